import logging

import numpy as np
import pytest
import torch

from a2i.io import (atomic_dir, atomic_path, content_digest, load_npz, read_json, remove_stale_temps, save_npy,
                    save_npz, save_torch, sha256_file, write_json)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_writes(tmp_path):
    save_npy(tmp_path / "a.npy", np.arange(3))
    write_json(tmp_path / "m.json", {"b": 1, "a": 2})
    assert np.load(tmp_path / "a.npy").tolist() == [0, 1, 2]
    assert (tmp_path / "m.json").read_text().startswith('{\n  "a": 2')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "m.json"]


def test_sha256(tmp_path):
    (tmp_path / "x").write_bytes(b"abc")
    assert sha256_file(tmp_path / "x") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_save_torch_bytes_depend_on_the_content_only(tmp_path):
    state = {"weight": torch.arange(6.0).reshape(2, 3), "epoch": 4}
    save_torch(tmp_path / "a.pt", state)
    save_torch(tmp_path / "sub" / "b.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "b.pt").read_bytes()
    loaded = torch.load(tmp_path / "a.pt", weights_only=True)
    assert torch.equal(loaded["weight"], state["weight"]) and loaded["epoch"] == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_save_torch_bytes_do_not_depend_on_which_equal_objects_are_shared(tmp_path):
    # A resumed run's optimizer holds strings unpickled from its checkpoint, an uninterrupted run's the literals.
    literal = {"config": {"lr": 1.0}, "optimizer": {"lr": 1.0}}
    unpickled = {"config": {"".join("lr"): 1.0}, "optimizer": {"".join("lr"): 1.0}}
    assert next(iter(unpickled["config"])) is not next(iter(unpickled["optimizer"]))
    save_torch(tmp_path / "a.pt", literal)
    save_torch(tmp_path / "b.pt", unpickled)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_save_torch_keeps_tensors_that_share_storage_shared(tmp_path):
    weight = torch.arange(4.0)
    save_torch(tmp_path / "a.pt", {"weight": weight, "tail": weight[2:]})
    loaded = torch.load(tmp_path / "a.pt", weights_only=True)
    loaded["weight"][3] = 9.0
    assert loaded["tail"].tolist() == [2.0, 9.0]


def test_content_digest_sees_every_byte_dtype_shape_and_value():
    state = {"ema": {"w": torch.arange(6.0).reshape(2, 3)}, "config": {"lr": 1e-3, "name": "x"}, "epoch": 2}
    digest = content_digest(state)
    assert digest == content_digest({"ema": {"w": torch.arange(6.0).reshape(2, 3)},
                                     "config": {"lr": 1e-3, "name": "x"}, "epoch": 2})
    flipped = torch.arange(6.0).reshape(2, 3)
    flipped.view(torch.uint8)[0, 5] ^= 1
    for changed in ({**state, "ema": {"w": flipped}}, {**state, "ema": {"w": torch.arange(6.0).reshape(3, 2)}},
                    {**state, "ema": {"w": torch.arange(6.0, dtype=torch.float64).reshape(2, 3)}},
                    {**state, "config": {"lr": 2e-3, "name": "x"}}, {**state, "epoch": "2"}):
        assert content_digest(changed) != digest


def test_remove_stale_temps_deletes_only_temporary_files_and_says_so(tmp_path, caplog):
    (tmp_path / "val").mkdir()
    for name in ("epoch_001.pt", ".epoch_002.pt.ab12cd.tmp", "val/.epoch_001_g3_s0.npz.x.tmp", "val/a.npz"):
        (tmp_path / name).write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        remove_stale_temps(tmp_path)
        remove_stale_temps(tmp_path / "not-yet-written")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == \
        ["epoch_001.pt", "val/a.npz"]
    assert caplog.text.count("left by an interrupted write") == 2


def test_atomic_dir_replaces_the_folder_only_when_the_block_succeeds(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.md").write_text("previous")
    (tmp_path / ".report.tmp").mkdir()  # left by a killed writer
    (tmp_path / ".report.tmp" / "half.md").write_text("half")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as staging:
            (staging / "new.md").write_text("new")
            raise RuntimeError("late failure")
    assert [p.name for p in out.iterdir()] == ["old.md"] and sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    with atomic_dir(out) as staging:
        (staging / "new.md").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.md"] and sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_load_npz_names_the_file_and_what_it_lacks(tmp_path):
    save_npz(tmp_path / "a.npz", images=np.zeros(2))
    assert load_npz(tmp_path / "a.npz", "images")[0].shape == (2,)
    with pytest.raises(ValueError, match=r"a.npz must hold 'images', 'labels'; it lacks 'labels'$"):
        load_npz(tmp_path / "a.npz", "images", "labels")
    save_npy(tmp_path / "b.npy", np.zeros(2))
    (tmp_path / "c.npz").write_bytes((tmp_path / "a.npz").read_bytes()[:40])
    for name in ("b.npy", "c.npz", "missing.npz"):
        with pytest.raises(ValueError, match=rf"^{tmp_path / name} is not a readable .npz archive \("):
            load_npz(tmp_path / name, "images")


@pytest.mark.parametrize("content, message", [
    (None, r"m\.json not found: run the classify stage$"),
    ('{"a": ', r"m\.json is not readable JSON \(Expecting value: line 1 column 7"),
    (b"\xff\xfe", r"m\.json is not readable JSON \('utf-8' codec can't decode"),
    ("[1, 2]", r"m\.json holds a JSON list, not an object$"),
    ('{"a": 1}', r"m\.json lacks 'b', 'c'$"),
])
def test_read_json_names_the_file_of_every_problem(tmp_path, content, message):
    path = tmp_path / "m.json"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_json(path, "a", "b", "c", hint="run the classify stage")
    path.write_text('{"a": 1, "b": 2, "c": null}')
    assert read_json(path, "a", "b", "c") == {"a": 1, "b": 2, "c": None}
