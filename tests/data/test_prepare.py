import logging

import numpy as np
import pandas as pd

from a2i.data.layout import INSTRUMENTS, LABELS
from a2i.data.prepare import prepare, read_chunk, read_frame

from .helpers import SEG, loud_track, quiet_track, write_performance, write_stub


def _index(out, length, split):
    return pd.read_csv(out / f"index_{length}s_{split}.csv")


def _s_ms(out, length, split, performance=None):
    index = _index(out, length, split)
    if performance:
        index = index[index.performance == performance]
    return index.s_ms.tolist()


def test_contiguous_train_performance(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    track = loud_track(2.0)
    write_performance(raw, "train", "cello", 0, track)
    write_stub(raw, "validation")
    prepare(raw, out, [1, 2])
    index = _index(out, 1, "train")
    # s = t - 500 for t = 500..2000; a 1 s sample needs s + 1000 <= 2000
    assert index.s_ms.tolist() == list(range(0, 1001, 100))
    assert index.t_ms.tolist() == [s + 500 for s in index.s_ms]
    assert (index.instrument == "cello").all() and (index.label == LABELS["cello"]).all()
    assert _s_ms(out, 2, "train") == [0]
    tracks = np.load(out / "tracks.npy")
    assert np.array_equal(tracks[:len(track)], track)  # the reconstructed track is the source performance
    for start, s in zip(index.start, index.s_ms):
        assert start == s // 100 * SEG
    images = pd.read_csv(out / "images.csv")
    assert images.t_ms[index.image].tolist() == index.t_ms.tolist()
    assert np.load(out / "images.npy").shape == (16 + 1, 64, 64, 3)


def test_gaps_break_samples(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    # t = 1200..1600 missing: segment [1100, 1200) is covered by no chunk; t = 800 missing: no start s = 300
    ts = [t for t in range(500, 2001, 100) if not 1200 <= t <= 1600 and t != 800]
    write_performance(raw, "train", "viola", 0, loud_track(2.0), ts)
    write_stub(raw, "validation")
    prepare(raw, out, [1])
    assert _s_ms(out, 1, "train") == [0, 100]
    performance = pd.read_csv(out / "performances.csv").iloc[0]
    assert performance.chunks == len(ts) and performance.covered_ms == 1900


def test_silence_threshold(tmp_path):
    raw = tmp_path / "raw"
    track = quiet_track(3.0)
    track[15 * SEG + 7] = -450  # one loud sample in segment [1500, 1600)
    write_performance(raw, "train", "flute", 0, track)
    write_stub(raw, "validation")
    prepare(raw, tmp_path / "a", [1], silence_peak=450)
    assert _s_ms(tmp_path / "a", 1, "train") == list(range(600, 1501, 100))
    prepare(raw, tmp_path / "b", [1], silence_peak=451)
    assert _s_ms(tmp_path / "b", 1, "train") == []


def test_midpoint_split_of_validation(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_performance(raw, "validation", "oboe", 1, loud_track(3.0))  # covered 0..3000 ms: m = 1500
    write_performance(raw, "validation", "horn", 2, loud_track(2.9))  # covered 0..2900 ms: m = 1450 -> 1400
    write_stub(raw, "train")
    prepare(raw, out, [1])
    assert _s_ms(out, 1, "val", "oboe01") == [0, 100, 200, 300, 400, 500]
    assert _s_ms(out, 1, "test", "oboe01") == [1500, 1600, 1700, 1800, 1900, 2000]
    assert _s_ms(out, 1, "val", "horn02") == [0, 100, 200, 300, 400]
    assert _s_ms(out, 1, "test", "horn02") == [1400, 1500, 1600, 1700, 1800, 1900]
    assert _s_ms(out, 1, "train") == []
    performances = pd.read_csv(out / "performances.csv").set_index("performance")
    assert performances.midpoint_ms.to_dict() == {"bassoon99": -1, "oboe01": 1500, "horn02": 1400}
    # a trimmed performance is cut at the middle of what the trim keeps: 300..2500 ms, m = 1400
    prepare(raw, tmp_path / "trimmed", [1], trim={"oboe01": [0.3, 0.5]})
    assert _s_ms(tmp_path / "trimmed", 1, "val", "oboe01") == [300, 400]
    assert _s_ms(tmp_path / "trimmed", 1, "test", "oboe01") == [1400, 1500]
    performances = pd.read_csv(tmp_path / "trimmed" / "performances.csv").set_index("performance")
    assert performances.midpoint_ms["oboe01"] == 1400


def test_double_bass_trim_and_counts(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_performance(raw, "train", "double_bass", 0, loud_track(2.0))
    write_performance(raw, "train", "double_bass", 1, loud_track(2.0, seed=1))
    write_performance(raw, "validation", "double_bass", 2, loud_track(3.0, seed=2))
    prepare(raw, out, [1, 2], trim={"double_bass01": [0.3, 0.5]})
    assert _s_ms(out, 1, "train", "double_bass00") == list(range(0, 1001, 100))
    # trim is [head_s, tail_s]: 0.3 s cut at the start and 0.5 s at the end of 0..2000 ms, so s >= 300, s + 1000 <= 1500
    assert _s_ms(out, 1, "train", "double_bass01") == [300, 400, 500]
    index = _index(out, 1, "train")
    assert (index.instrument == "double_bass").all() and (index.label == LABELS["double_bass"]).all()
    counts = pd.read_csv(out / "counts.csv")
    assert list(counts.columns) == ["instrument", "split", "length_s", "samples"]
    assert len(counts) == 13 * 2 + 13 * 3 * 2
    got = counts.set_index(["instrument", "split", "length_s"]).samples
    assert got["double_bass", "original_train", 0.5] == 32
    assert got["double_bass", "original_validation", 0.5] == 26
    assert got["double_bass", "train", 1.0] == 11 + 3
    assert got["double_bass", "val", 1.0] == 6 and got["double_bass", "test", 1.0] == 6
    # 2 s samples do not fit in either 1.5 s half of the 3 s validation performance
    assert got["double_bass", "val", 2.0] == 0 and got["double_bass", "test", 2.0] == 0
    assert got["double_bass", "train", 2.0] == 1 and got["cello", "train", 1.0] == 0


def test_overlap_disagreement_is_reported(tmp_path, caplog):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_performance(raw, "train", "tuba", 0, loud_track(1.5))
    other = loud_track(1.5, seed=9)
    write_performance(raw, "train", "tuba", 0, other, ts=[1000])  # overwrite one chunk with other audio
    write_stub(raw, "validation")
    with caplog.at_level(logging.WARNING):
        prepare(raw, out, [1])
    # chunk 1000 holds segments 5..9, each also held by a neighbouring chunk cut from the other track
    assert pd.read_csv(out / "performances.csv").disagreeing_segments.tolist() == [5, 0]  # tuba00, the stub
    assert "tuba00: overlapping chunks disagree on 5 of 15 segments" in caplog.text


def test_storage_is_independent_of_lengths(tmp_path):
    raw = tmp_path / "raw"
    write_performance(raw, "train", "sax", 0, loud_track(6.0))
    write_stub(raw, "validation")
    prepare(raw, tmp_path / "one", [1])
    prepare(raw, tmp_path / "five", [1, 2, 3, 4, 5])
    for name in ("tracks.npy", "images.npy"):
        assert (tmp_path / "one" / name).stat().st_size == (tmp_path / "five" / name).stat().st_size
    assert len(_index(tmp_path / "five", 5, "train")) == 11  # s = 0..1000 with s + 5000 <= 6000


def test_crop_boxes(tmp_path):
    from PIL import Image

    pixels = np.zeros((90, 160, 3), np.uint8)
    pixels[:, :40] = (255, 0, 0)
    pixels[:, 40:120] = (0, 255, 0)  # the centred full-height square spans x = 35..125
    pixels[:, 120:] = (0, 0, 255)
    path = tmp_path / "f.jpg"
    Image.fromarray(pixels).save(path, quality=100)
    centre = read_frame(path, "cello", {}, (16,))[0].astype(int)
    assert centre.shape == (16, 16, 3)
    assert (centre[:, 2:-2, 1] > 200).all() and (centre[:, 2:-2, [0, 2]] < 60).all()
    left = read_frame(path, "cello", {"cello": [0.0, 0.0, 0.2, 1.0]}, (8,))[0].astype(int)
    assert (left[..., 0] > 200).all() and (left[..., 1] < 60).all()
    assert read_frame(path, "violin", {"cello": [0.0, 0.0, 0.2, 1.0]}, (8,))[0][..., 1].mean() > 200


def test_high_resolution_crops_are_the_same_frames_at_the_larger_side(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_performance(raw, "train", "cello", 0, loud_track(2.0))
    write_stub(raw, "validation")
    prepare(raw, out, [1], image_size=16, hr_image_size=32)
    low, high = np.load(out / "images.npy"), np.load(out / "images_hr.npy")
    assert low.shape == (17, 16, 16, 3) and high.shape == (17, 32, 32, 3)  # 16 pairs and the stub
    pooled = high.reshape(17, 16, 2, 16, 2, 3).astype(float).mean(axis=(2, 4))
    assert np.abs(pooled - low).mean() < 4  # one crop, two antialiased sizes
    prepare(raw, tmp_path / "plain", [1], image_size=16)
    assert not (tmp_path / "plain" / "images_hr.npy").exists()


def test_high_resolution_side_must_be_larger(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="prepare.hr_image_size must be above prepare.image_size=16, got 16"):
        prepare(tmp_path, tmp_path / "out", [1], image_size=16, hr_image_size=16)


def test_large_frames_are_downscaled_with_antialiasing(tmp_path):
    from PIL import Image

    # 1 px black/white stripes: an aliasing resize would give black or white, antialiasing grey
    pixels = np.zeros((1080, 1920, 3), np.uint8)
    pixels[:, ::2] = 255
    path = tmp_path / "hd.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    image = read_frame(path, "cello", {}, (64,))[0].astype(float)
    assert image.shape == (64, 64, 3)
    assert 100 < image.mean() < 155 and image.std() < 10


def test_a_crop_does_not_depend_on_the_other_sizes_asked_for(tmp_path):
    from PIL import Image

    # each size is decoded on its own: images.npy is the same with or without prepare.hr_image_size
    pixels = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    path = tmp_path / "hd.jpg"
    Image.fromarray(pixels).save(path, quality=90)
    alone = read_frame(path, "cello", {}, (64,))[0]
    low, high = read_frame(path, "cello", {}, (64, 256))
    assert np.array_equal(alone, low) and np.array_equal(high, read_frame(path, "cello", {}, (256,))[0])


def test_real_fixture_files(tmp_path):
    import shutil

    from .helpers import FIXTURES

    mono = read_chunk(FIXTURES / "chunk/train/bassoon/bassoon00_1000.wav")
    assert mono.dtype == np.int16 and mono.shape == (22050,) and np.abs(mono).max() == 106
    assert np.abs(read_chunk(FIXTURES / "chunk/validation/bassoon/bassoon01_1000.wav")).max() == 129
    raw = tmp_path / "Sub-URMP"
    for split, stem, image in [("train", "bassoon00_1000", "train/bassoon/bassoon00_23700"),
                               ("validation", "bassoon01_1000", "test/bassoon/bassoon01_2400")]:
        (raw / "chunk" / split / "bassoon").mkdir(parents=True)
        (raw / "img" / split / "bassoon").mkdir(parents=True)
        shutil.copy(FIXTURES / f"chunk/{split}/bassoon/{stem}.wav", raw / "chunk" / split / "bassoon")
        shutil.copy(FIXTURES / f"img/{image}.jpg", raw / "img" / split / "bassoon" / f"{stem}.jpg")
    prepare(raw, tmp_path / "silent", [0.5])  # both real chunks are noise floor: dropped at 450
    assert sum(len(_index(tmp_path / "silent", 0.5, s)) for s in ("train", "val", "test")) == 0
    out = tmp_path / "out"
    prepare(raw, out, [0.5], silence_peak=100)
    assert _s_ms(out, 0.5, "train") == [500]
    # the lone validation chunk straddles its own midpoint (700 ms): neither val nor test
    assert len(_index(out, 0.5, "val")) == 0 and len(_index(out, 0.5, "test")) == 0
    images = np.load(out / "images.npy")
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.uint8 and images.std() > 10
    for path in ["train/double_bass/double_bass00_5000", "train/cello/cello00_6300"]:
        assert read_frame(FIXTURES / f"img/{path}.jpg", "cello", {}, (64,))[0].shape == (64, 64, 3)


def test_every_instrument_gets_counted(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    for i, instrument in enumerate(INSTRUMENTS):
        write_performance(raw, "train", instrument, 0, loud_track(1.0, seed=i), colour=(i * 19, 40, 90))
    write_stub(raw, "validation")
    prepare(raw, out, [1])
    counts = pd.read_csv(out / "counts.csv")
    train = counts[counts.split == "train"].set_index("instrument").samples
    assert train.to_dict() == {name: 1 for name in INSTRUMENTS}
