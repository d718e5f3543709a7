import re

import pytest
import yaml

from a2i.diffusion import upsample
from a2i.diffusion.superres import SuperResUNet
from a2i.variants import samples_dir, upsampled_dir

from .helpers import REPO


def test_a_damaged_samples_file_is_one_error_naming_it_and_nothing_is_written(tmp_path, monkeypatch):
    sample = tmp_path / samples_dir("text-2s") / "epoch_004_g3_s0.npz"
    sample.parent.mkdir(parents=True)
    sample.write_bytes(b"PK\x03\x04 cut short")
    monkeypatch.setattr(upsample, "selected_checkpoint",
                        lambda root, grid, guidance: {"variant": "text-2s", "epoch": 4, "guidance": 3.0})
    monkeypatch.setattr(upsample, "load_superres", lambda path, device: SuperResUNet("tiny", 32, 64).eval())
    params = yaml.safe_load((REPO / "params.yaml").read_text())["sample_sr"]
    with pytest.raises(ValueError, match=rf"^{re.escape(str(sample))} is not a readable \.npz archive"):
        upsample.sample_sr(params, [], tmp_path)
    assert not (tmp_path / upsampled_dir("diffusion")).exists()
