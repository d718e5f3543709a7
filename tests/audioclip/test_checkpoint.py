"""Loading released AudioCLIP checkpoints: strict keys, sha256 identification, and what a wrong file says."""

import logging
import pickle
import struct

import pytest
import torch

from a2i.audioclip import CheckpointError, create_model, load_pretrained, verify_checkpoint
from a2i.audioclip import checkpoint as ckpt
from a2i.io import sha256_file

from .golden import read_manifest, thesis_model


def constant_state_dict(value: float = 0.25, manifest=None) -> dict[str, torch.Tensor]:
    """Every manifest key with its shape and dtype, as a stride-0 view of one element (a file of a few KB)."""
    manifest = read_manifest() if manifest is None else manifest
    return {key: torch.full((1,), value if dtype.is_floating_point else 0, dtype=dtype).expand(shape)
            if shape else torch.tensor(value if dtype.is_floating_point else 0, dtype=dtype)
            for key, (shape, dtype) in manifest.items()}


def save(path, obj):
    torch.save(obj, path)
    return path


class Payload:
    """Unpickling this runs code: weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("executed",))


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    return save(tmp_path_factory.mktemp("ckpt") / "AudioCLIP-Partial-Training.pt", constant_state_dict())


def test_load_pretrained_loads_strictly_and_warns_on_unknown_sha(good_file, caplog):
    model = thesis_model()
    with caplog.at_level(logging.WARNING):
        info = load_pretrained(model, good_file)
    assert info == {"path": str(good_file), "sha256": sha256_file(good_file), "known": None}
    assert str(good_file) in caplog.text and "neither AudioCLIP-Partial-Training.pt" in caplog.text
    assert model.audio.fbsp.fc[7].item() == 0.25 and model.visual.conv1.weight[0, 0, 0, 0].item() == 0.25
    assert int(model.audio.bn1.num_batches_tracked) == 0


def test_load_pretrained_names_a_known_release(good_file, monkeypatch, caplog):
    monkeypatch.setitem(ckpt.AUDIOCLIP_SHA256, sha256_file(good_file), "AudioCLIP-Partial-Training.pt")
    with caplog.at_level(logging.WARNING):
        info = load_pretrained(thesis_model(), good_file)
    assert info["known"] == "AudioCLIP-Partial-Training.pt" and caplog.text == ""


def test_load_pretrained_refuses_other_sizes_and_bad_files(good_file, tmp_path):
    with pytest.raises(CheckpointError, match="only fit the 'thesis' size"):
        load_pretrained(create_model("tiny", None)[0], good_file)
    state = constant_state_dict()
    state["audio.fc.weight"] = torch.zeros(527, 2048)
    with pytest.raises(CheckpointError, match=r"shape mismatch for audio.fc.weight: file \(527, 2048\)"):
        load_pretrained(thesis_model(), save(tmp_path / "bad.pt", state))


def test_create_model_without_checkpoint_is_random_and_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        model, info = create_model("tiny", None)
    assert info == {"pretrained": False} and model.size == "tiny"
    assert "RANDOM AudioCLIP weights" in caplog.text


def test_create_model_with_checkpoint(good_file, monkeypatch):
    # the thesis model is built once per session: hand it out instead of building another
    monkeypatch.setattr(ckpt, "AudioCLIP", lambda profile: thesis_model())
    model, info = create_model("thesis", good_file)
    assert info == {"pretrained": True, "checkpoint_sha256": sha256_file(good_file), "checkpoint_known": None}


def test_verify_accepts_a_complete_file(good_file):
    report = verify_checkpoint(good_file)
    assert report["problems"] == [] and report["known"] is None


def test_verify_lists_missing_unexpected_and_mismatched_keys(tmp_path):
    state = constant_state_dict()
    del state["audio.fbsp.m"], state["logit_scale_at"]
    state["audio.extra"] = torch.zeros(3)
    state["visual.conv1.weight"] = torch.zeros(32, 3, 5, 5)
    state["audio.bn1.num_batches_tracked"] = torch.tensor(0.0)
    problems = verify_checkpoint(save(tmp_path / "x.pt", state))["problems"]
    assert problems == [
        "2 missing keys: audio.fbsp.m, logit_scale_at",
        "1 unexpected keys: audio.extra",
        "dtype mismatch for audio.bn1.num_batches_tracked: file torch.float32, expected torch.int64",
        "shape mismatch for visual.conv1.weight: file (32, 3, 5, 5), expected (32, 3, 3, 3)",
    ]


def test_verify_and_load_refuse_non_finite_weights_and_keys_that_are_not_names(good_file, tmp_path):
    state = constant_state_dict()
    for key, value in (("audio.fc.weight", float("nan")), ("logit_scale_ai", float("inf"))):
        state[key] = torch.full((1,), value).expand(state[key].shape) if state[key].dim() else torch.tensor(value)
    path = save(tmp_path / "nan.pt", state)
    assert verify_checkpoint(path)["problems"] == [
        "2 tensors hold NaN or infinite values: audio.fc.weight, logit_scale_ai"]
    with pytest.raises(CheckpointError, match="nan.pt: not loadable into AudioCLIP: 2 tensors hold NaN"):
        load_pretrained(thesis_model(), path)
    problems = verify_checkpoint(save(tmp_path / "ints.pt", {0: torch.zeros(1)}))["problems"]
    assert problems[0] == "1 keys that are not names: 0"


def test_verify_recognises_clip_and_audio_head_files(tmp_path):
    manifest = read_manifest()
    clip = {k: v for k, v in manifest.items() if not k.startswith("audio.") and not k.startswith("logit_scale_a")}
    problems = verify_checkpoint(save(tmp_path / "CLIP.pt", constant_state_dict(manifest=clip)))["problems"]
    assert problems[0] == "this is CLIP.pt (the CLIP RN50 image and text towers), not an AudioCLIP checkpoint"
    head = {k.removeprefix("audio."): v for k, v in manifest.items() if k.startswith("audio.")}
    head["fc.weight"], head["fc.bias"] = ((527, 2048), torch.float32), ((527,), torch.float32)
    problems = verify_checkpoint(save(tmp_path / "ESRNXFBSP.pt", constant_state_dict(manifest=head)))["problems"]
    assert problems[0].startswith("this is ESRNXFBSP.pt")


def test_verify_names_other_release_files_by_sha(tmp_path, monkeypatch):
    path = save(tmp_path / "renamed.pt", {"w": torch.zeros(2)})
    monkeypatch.setitem(ckpt.OTHER_SHA256, sha256_file(path), "CLIP.pt")
    assert verify_checkpoint(path)["problems"] == ["this is CLIP.pt (by its sha256), not an AudioCLIP checkpoint"]


def test_unreadable_files_say_why(good_file, tmp_path, capsys):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good_file.read_bytes()[: good_file.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt: unreadable \\(truncated or not a torch file\\)"):
        verify_checkpoint(truncated)
    evil = save(tmp_path / "evil.pt", {"w": torch.zeros(1), "x": Payload()})
    legacy = tmp_path / "legacy.pt"
    torch.save({"x": Payload()}, legacy, _use_new_zipfile_serialization=False)
    for path in (evil, legacy):
        with pytest.raises(CheckpointError, match=f"{path.name}: refused: the pickle needs code execution") as error:
            verify_checkpoint(path)
        assert "weights_only" not in str(error.value) and "\n" not in str(error.value)  # no advice to turn it off
    assert "executed" not in capsys.readouterr().out
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps(Payload()))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"hello world")
    for path in (plain, garbage):
        with pytest.raises(CheckpointError, match=f"{path.name}: not a PyTorch checkpoint"):
            verify_checkpoint(path)
    assert "executed" not in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        verify_checkpoint(save(tmp_path / "list.pt", [torch.zeros(1)]))
    with pytest.raises(CheckpointError, match=r"nested dicts under \['audio'\]; a training checkpoint"):
        verify_checkpoint(save(tmp_path / "nested.pt", {"audio": {"w": torch.zeros(1)}, "size": "tiny"}))
    with pytest.raises(CheckpointError, match="no such file"):
        verify_checkpoint(tmp_path / "absent.pt")
    directory = tmp_path / "directory.pt"  # its end record whole, its central directory not
    data = bytearray(good_file.read_bytes())
    start = struct.unpack("<I", data[data.rfind(b"PK\x05\x06") + 16:][:4])[0]
    data[start:start + 4] = b"XXXX"
    directory.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"directory.pt: unreadable \(truncated or not a torch file\): BadZip"):
        verify_checkpoint(directory)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_archives_are_named(tmp_path):
    path = tmp_path / "RN50.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    with pytest.raises(CheckpointError, match="a TorchScript archive"):
        verify_checkpoint(path)
