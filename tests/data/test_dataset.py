import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from a2i.data.dataset import PreparedDataset
from a2i.data.prepare import prepare

from .helpers import SEG, SR, loud_track, write_performance


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    tracks = {"cello00": loud_track(2.5, seed=1), "flute01": loud_track(4.0, seed=2)}
    write_performance(root / "raw", "train", "cello", 0, tracks["cello00"], colour=(250, 120, 20))
    write_performance(root / "raw", "validation", "flute", 1, tracks["flute01"], colour=(20, 20, 250))
    prepare(root / "raw", root / "out", [1, 2])
    return root / "out", tracks


def test_items_are_the_source_audio_and_frame(prepared):
    out, tracks = prepared
    data = PreparedDataset(out, 1, "train")
    assert len(data) == 16 and data.labels.dtype == np.int64 and (data.labels == 1).all()
    audio, image, label = data[3]
    assert audio.dtype == torch.int16 and audio.shape == (1, SR)
    assert image.dtype == torch.uint8 and image.shape == (64, 64, 3) and label == 1
    s = data.index.s_ms[3] // 100
    assert np.array_equal(audio[0].numpy(), tracks["cello00"][s * SEG:s * SEG + SR])
    assert abs(int(image[..., 0].float().mean()) - 250) < 8  # the orange frame of this performance


def test_batch_accessors(prepared):
    out, tracks = prepared
    data = PreparedDataset(out, 2, "test")
    assert len(data) == 1 and data.index.s_ms.tolist() == [2000]  # m = 2000 ms: s >= m and s + 2 s <= 4 s
    batch = data.audio([0])
    assert batch.shape == (1, 1, 2 * SR) and batch.dtype == np.int16
    assert np.array_equal(batch[0, 0], tracks["flute01"][20 * SEG:20 * SEG + 2 * SR])
    images = data.images()
    assert images.shape == (1, 64, 64, 3) and images[..., 2].mean() > 230


def test_pickles_without_its_maps(prepared):
    out, _ = prepared
    data = PreparedDataset(out, 1, "val")
    first = data[0]
    clone = pickle.loads(pickle.dumps(data))
    assert clone._maps == {} and torch.equal(clone[0][0], first[0])


def test_missing_length_or_split(prepared):
    out, _ = prepared
    with pytest.raises(ValueError, match="index_3s_train.csv not found"):
        PreparedDataset(out, 3, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        PreparedDataset(out, 1, "validation")


@pytest.mark.parametrize("column, value, message", [
    ("label", 13, r"index_1s_train.csv: row 2 has label 13, outside 0..12, the instruments"),
    ("start", 10**9, r"index_1s_train.csv: row 2 \(start 1000000000, image \d+\) lies outside .*tracks.npy"),
    ("image", -1, r"index_1s_train.csv: row 2 \(start \d+, image -1\) lies outside .*images.npy"),
])
def test_a_damaged_index_is_named_with_its_row(prepared, tmp_path, column, value, message):
    out = tmp_path / "out"
    shutil.copytree(prepared[0], out)
    index = pd.read_csv(out / "index_1s_train.csv")
    index.loc[2, column] = value
    index.to_csv(out / "index_1s_train.csv", index=False)
    with pytest.raises(ValueError, match=message):
        data = PreparedDataset(out, 1, "train")
        data.audio([0]), data.images()  # each array is checked when first opened


def test_an_index_that_is_no_table_or_lacks_a_column_is_named(prepared, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(prepared[0], out)
    (out / "index_1s_train.csv").write_text("")
    with pytest.raises(ValueError, match=r"index_1s_train.csv is not a readable index table"):
        PreparedDataset(out, 1, "train")
    (out / "index_1s_train.csv").write_text("start,image\n0,0\n")
    with pytest.raises(ValueError, match=r"index_1s_train.csv lacks the column\(s\) label"):
        PreparedDataset(out, 1, "train")
    (out / "index_1s_train.csv").write_text("start,image,label\n")
    with pytest.raises(ValueError, match=r"index_1s_train.csv has no samples"):
        PreparedDataset(out, 1, "train").require_samples()


@pytest.mark.parametrize("name, array, message", [
    ("images", np.zeros((40, 64, 64, 3), np.float32), r"images.npy: float32 \[40, 64, 64, 3\], expected uint8"),
    ("images", np.zeros((40, 64, 64), np.uint8), r"images.npy: uint8 \[40, 64, 64\], expected uint8 \[n, S, S, 3\]"),
    ("tracks", np.zeros((10**6, 2), np.int16), r"tracks.npy: int16 \[1000000, 2\], expected int16 \[n\]"),
])
def test_packed_arrays_of_another_kind_are_named(prepared, tmp_path, name, array, message):
    out = tmp_path / "out"
    shutil.copytree(prepared[0], out)
    np.save(out / f"{name}.npy", array)
    data = PreparedDataset(out, 1, "train")  # the labels alone read neither array
    assert len(data.labels) == 16
    with pytest.raises(ValueError, match=message):
        data.audio([0]) if name == "tracks" else data.images()
