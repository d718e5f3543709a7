import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from a2i.cli import main
from a2i.evaluation.fid import INCEPTION_FILE

from .helpers import real_frames


def _fid(*args):
    return CliRunner().invoke(main, ["fid", *map(str, args)])


def test_help_shows_defaults():
    result = CliRunner().invoke(main, ["fid", "--help"])
    assert result.exit_code == 0
    assert "--batch-size" in result.output and "default: 50" in result.output
    assert "--weights" in result.output and "--device" in result.output


@pytest.fixture
def image_sets(tmp_path):
    """The same three real frames as a folder of PNGs and as an .npz; a fourth set of other frames."""
    images, _ = real_frames(size=40)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, image in enumerate(images[:3]):
        Image.fromarray(image).save(folder / f"{i}.png")
    np.savez(tmp_path / "same.npz", images=images[:3])
    np.savez(tmp_path / "other.npz", images=images[1:])
    return folder, tmp_path / "same.npz", tmp_path / "other.npz"


def test_folder_and_npz_give_the_same_fid(image_sets, inception_weights):
    folder, same, other = image_sets
    values = []
    for first in (folder, same):
        result = _fid(first, other, "--weights", inception_weights, "--device", "cpu", "--batch-size", 2)
        assert result.exit_code == 0, result.output
        assert re.fullmatch(r"FID: [0-9.e+-]+\n", result.stdout)
        values.append(float(result.stdout.split()[-1]))
    assert values[0] == pytest.approx(values[1], rel=1e-6) and values[0] > 0


def test_missing_weights_say_where_to_put_them(image_sets, tmp_path):
    folder, same, _ = image_sets
    result = _fid(folder, same)  # TORCH_HOME is an empty folder in these tests
    assert result.exit_code != 0
    assert "Inception weights not found" in result.output
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints") in result.output and INCEPTION_FILE in result.output
    result = _fid(folder, same, "--weights", tmp_path / "absent.pth")
    assert result.exit_code != 0 and "absent.pth" in result.output


def test_bad_image_sets_are_named(image_sets, inception_weights, tmp_path):
    folder, same, _ = image_sets
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    result = _fid(empty, same, "--weights", inception_weights)
    assert result.exit_code != 0 and f"{empty} holds no images" in result.output
    np.savez(tmp_path / "one.npz", images=np.zeros((1, 8, 8, 3), np.uint8))
    result = _fid(folder, tmp_path / "one.npz", "--weights", inception_weights)
    assert result.exit_code != 0 and "at least 2 images, found 1" in result.output
    np.savez(tmp_path / "float.npz", images=np.zeros((4, 8, 8, 3), np.float32))
    result = _fid(folder, tmp_path / "float.npz", "--weights", inception_weights)
    assert result.exit_code != 0 and "expected uint8 images [N, H, W, 3]" in result.output
    (tmp_path / "garbage.npz").write_bytes(b"not an archive")
    result = _fid(folder, tmp_path / "garbage.npz", "--weights", inception_weights)
    assert result.exit_code != 0 and f"{tmp_path / 'garbage.npz'} is not a readable .npz archive" in result.output
    Image.new("RGB", (20, 20)).save(folder / "small.png")
    result = _fid(folder, same, "--weights", inception_weights)
    assert result.exit_code != 0 and "images differ in size" in result.output
    (folder / "small.png").write_bytes(b"not a png")
    result = _fid(folder, same, "--weights", inception_weights)
    assert result.exit_code != 0 and f"{folder / 'small.png'} is not a readable image" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_device_is_chosen_as_the_stages_choose_it(monkeypatch, image_sets):
    # auto is the CPU without CUDA (a free GPU with it, as the evaluate stage); cuda there is a one-line error.
    import torch

    import a2i.evaluation.fid as fid

    used = []
    monkeypatch.setattr(fid, "fid_between", lambda *args: used.append(args[-1]) or 0.0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    folder, same, _ = image_sets
    assert _fid(folder, same).exit_code == 0 and _fid(folder, same, "--device", "cpu").exit_code == 0
    assert used == ["cpu", "cpu"]
    result = _fid(folder, same, "--device", "cuda")
    assert result.exit_code == 2 and "Invalid value for --device: device 'cuda' was asked for but CUDA" in result.output
