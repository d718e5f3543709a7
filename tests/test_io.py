import numpy as np
import pytest
import torch

from a2i.io import atomic_path, save_npy, save_torch, sha256_file, write_json


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
