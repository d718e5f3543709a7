"""The `embed` stage: every prepared sample through the fine-tuned audio head, packed per split."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from a2i.audioclip import AudioCLIP
from a2i.audioclip.embed import embed_audio, load_audio_encoder, read_heads, run_embed
from a2i.audioclip.finetune import heads_state
from a2i.data.dataset import PreparedDataset
from a2i.data.layout import SPLITS
from a2i.io import save_torch

from .test_finetune import PARAMS, REPO, make_prepared


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prepared"), counts=(("train", 5), ("val", 2), ("test", 3)))


@pytest.fixture(scope="module")
def heads(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = AudioCLIP("tiny").eval()
    path = tmp_path_factory.mktemp("models") / "text-1s.pt"
    save_torch(path, heads_state(model, "text", 1, pretrained=False))
    return path


def test_embeddings_follow_the_index_and_equal_the_encoder_output(prepared, heads, tmp_path):
    arrays = run_embed("text-1s", {"batch_size": 4, "device": "cpu"}, prepared, heads, tmp_path / "emb")
    encoder = load_audio_encoder(heads)
    for split in SPLITS:
        data = PreparedDataset(prepared, 1, split)
        saved = np.load(tmp_path / "emb" / f"{split}.npy")
        assert saved.dtype == np.float32 and saved.shape == (len(data), 1024)
        assert np.array_equal(saved, arrays[split])
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "emb" / f"{split}.csv"), data.index)
        with torch.inference_mode():  # row i is sample i, embedded on its own
            single = torch.cat([encoder(data[i][0][None].float()) for i in range(len(data))]).numpy()
        np.testing.assert_allclose(saved, single, rtol=1e-4, atol=1e-4)


def test_embedding_is_deterministic_and_independent_of_the_batch_size(prepared, heads):
    data = PreparedDataset(prepared, 1, "test")
    encoder = load_audio_encoder(heads)
    first = embed_audio(encoder, data, batch_size=2)
    assert np.array_equal(first, embed_audio(encoder, data, batch_size=2))
    np.testing.assert_allclose(first, embed_audio(encoder, data, batch_size=64), rtol=1e-4, atol=1e-4)
    assert not encoder.training


def test_a_head_loaded_under_inference_mode_embeds_the_same(prepared, heads):
    # Its parameters are inference tensors, without the version counter the filter-bank cache is keyed on.
    data = PreparedDataset(prepared, 1, "test")
    expected = embed_audio(load_audio_encoder(heads), data, batch_size=4)
    with torch.inference_mode():
        encoder = load_audio_encoder(heads)
        np.testing.assert_array_equal(embed_audio(encoder, data, batch_size=4), expected)


def test_heads_of_another_cell_are_refused(prepared, heads, tmp_path):
    with pytest.raises(ValueError, match="fine-tuned for text-1s, not frozen-1s"):
        run_embed("frozen-1s", {"batch_size": 4, "device": "cpu"}, prepared, heads, tmp_path / "emb")
    assert not (tmp_path / "emb").exists()


def test_a_missing_split_writes_nothing(heads, tmp_path):
    partial = make_prepared(tmp_path / "prepared", counts=(("train", 2), ("val", 1)))
    with pytest.raises(ValueError, match="index_1s_test.csv not found"):
        run_embed("text-1s", {"batch_size": 4, "device": "cpu"}, partial, heads, tmp_path / "emb")
    assert not (tmp_path / "emb").exists()


def test_bad_heads_files_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="no fine-tuned AudioCLIP heads"):
        read_heads(tmp_path / "absent.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="garbage.pt: unreadable"):
        read_heads(tmp_path / "garbage.pt")
    torch.save({"audio": {}}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="partial.pt: not a fine-tuned heads file"):
        read_heads(tmp_path / "partial.pt")


def _heads_with(heads: Path, tmp_path: Path, **changes) -> Path:
    state = torch.load(heads, weights_only=True)
    path = tmp_path / "changed.pt"
    save_torch(path, {**state, **changes})
    return path


def test_malformed_or_non_finite_heads_name_the_file_and_what_is_wrong(heads, tmp_path):
    audio = torch.load(heads, weights_only=True)["audio"]
    key = next(k for k, v in audio.items() if v.is_floating_point())
    cases = {
        "size 'bogus' is not one of": {"size": "bogus"},
        "length_s 'x' is not a whole number of seconds in 1..10": {"length_s": "x"},
        "length_s 1.7 is not a whole number": {"length_s": 1.7},
        "length_s inf is not a whole number": {"length_s": float("inf")},
        "length_s nan is not a whole number": {"length_s": float("nan")},
        "alignment 'texts' is not one of text, frozen, mutual": {"alignment": "texts"},
        "audio is a Tensor, not a state dict": {"audio": torch.zeros(1)},
        f"1 missing keys: {key}": {"audio": {k: v for k, v in audio.items() if k != key}},
        f"1 tensors hold NaN or infinite values: {key}": {"audio": {**audio, key: torch.full_like(audio[key],
                                                                                              float("nan"))}},
    }
    for why, change in cases.items():
        path = _heads_with(heads, tmp_path, **change)
        with pytest.raises(ValueError) as error:
            load_audio_encoder(path)
        assert str(error.value).startswith(f"{path}: ") and why in str(error.value), str(error.value)


def test_a_run_killed_while_writing_leaves_the_earlier_embeddings_whole(prepared, heads, tmp_path, monkeypatch):
    out = tmp_path / "emb"
    run_embed("text-1s", {"batch_size": 4, "device": "cpu"}, prepared, heads, out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    import a2i.audioclip.embed as embed_module

    calls = []

    def killed_on_the_second(path, array):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        np.save(path, array)

    monkeypatch.setattr(embed_module, "save_npy", killed_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_embed("text-1s", {"batch_size": 4, "device": "cpu"}, prepared, _heads_with(
            heads, tmp_path, audio={k: v * 1.01 if v.is_floating_point() else v
                                    for k, v in torch.load(heads, weights_only=True)["audio"].items()}), out)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_stages_write_the_contract_paths(tmp_path):
    """`stages/finetune.py` then `stages/embed.py` from a project root holding params.yaml and data/prepared."""
    make_prepared(tmp_path / "data" / "prepared", counts=(("train", 4), ("val", 1), ("test", 2)))
    params = {"finetune": {**PARAMS, "max_steps_per_epoch": 1, "bn_recalibration_batches": 1},
              "embed": {"batch_size": 8, "device": "cpu"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = os.environ | {"PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    for stage in ("finetune", "embed"):
        result = subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py"), "--embedding", "frozen-1s"],
                                cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "models" / "audioclip" / "frozen-1s.pt").is_file()
    assert (tmp_path / "metrics" / "finetune" / "frozen-1s.json").is_file()
    assert (tmp_path / "dvclive" / "finetune" / "frozen-1s" / "metrics.json").is_file()
    for split, n in (("train", 12), ("val", 3), ("test", 6)):
        assert np.load(tmp_path / "data" / "embeddings" / "frozen-1s" / f"{split}.npy").shape == (n, 1024)
