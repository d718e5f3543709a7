import numpy as np
import pytest

from a2i.io import atomic_path, save_npy, sha256_file, write_json


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
