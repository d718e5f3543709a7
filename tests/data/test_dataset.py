import pickle

import numpy as np
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
