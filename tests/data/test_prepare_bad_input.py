import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from a2i.data.prepare import prepare

from .helpers import SR, loud_track, write_performance


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "Sub-URMP"
    write_performance(root, "train", "violin", 0, loud_track(1.5))
    write_performance(root, "validation", "violin", 1, loud_track(2.0, seed=1))
    return root


def _wav(raw, stem="violin00_1000", split="train"):
    return raw / "chunk" / split / "violin" / f"{stem}.wav"


def _jpg(raw, stem="violin00_1000", split="train"):
    return raw / "img" / split / "violin" / f"{stem}.jpg"


def _truncate(raw):
    path = _wav(raw)
    path.write_bytes(path.read_bytes()[:30_000])
    return path


def _not_wav(raw):
    path = _wav(raw)
    path.write_bytes(b"this is not a wave file" * 100)
    return path


def _width(raw):
    path = _wav(raw)
    sf.write(path, np.zeros((22050, 2)), SR, subtype="PCM_24")
    return path


def _unpaired(raw):
    path = _wav(raw, "violin00_1600")
    sf.write(path, np.zeros((22050, 2), np.int16), SR, subtype="PCM_16")
    return path


def _bad_jpeg(raw):
    path = _jpg(raw)
    path.write_bytes(path.read_bytes()[:40])
    return path


def _bad_name(raw):
    (_jpg(raw).parent / "violin_x.jpg").write_bytes(_jpg(raw).read_bytes())
    path = _wav(raw).parent / "violin_x.wav"
    path.write_bytes(_wav(raw).read_bytes())
    return path


def _bomb(raw):  # a frame whose header claims 20000x20000 pixels: PIL refuses to decode it
    path = _jpg(raw)
    data = bytearray(path.read_bytes())
    at = data.index(b"\xff\xc0") + 5  # baseline SOF: height, then width, big-endian
    data[at:at + 4] = (20000).to_bytes(2, "big") * 2
    path.write_bytes(bytes(data))
    return path


def _second_name(raw):  # a second chunk/frame pair for 1000 ms under a padded name
    path = _wav(raw).with_name("violin00_01000.wav")
    shutil.copy(_wav(raw, "violin00_1500"), path)
    shutil.copy(_jpg(raw, "violin00_1500"), _jpg(raw).with_name("violin00_01000.jpg"))
    return path


def _non_ascii_digits(raw):
    path = _wav(raw).with_name("violin00_\u0661\u0660\u0660\u0660.wav")
    shutil.copy(_wav(raw), path)
    shutil.copy(_jpg(raw), _jpg(raw).with_name(path.stem + ".jpg"))
    return path


def _upper_case_suffix(raw):  # beside the lower-case pair, so the frame stays paired
    path = _wav(raw).with_suffix(".WAV")
    shutil.copy(_wav(raw), path)
    return path


def _odd_rate(raw):  # 48,002 Hz shares 2 Hz with 44.1 kHz: resampling would need a 24,001-phase kernel
    path = _wav(raw)
    sf.write(path, np.zeros((24001, 2), np.int16), 48002, subtype="PCM_16")
    return path


def _far_timestamp(raw):  # violin00_1500 typed with three digits too many
    path = _wav(raw, "violin00_1500000")
    shutil.copy(_wav(raw, "violin00_1500"), path)
    shutil.copy(_jpg(raw, "violin00_1500"), _jpg(raw, "violin00_1500000"))
    return path


CASES = {
    "truncated": (_truncate, "truncated?"),
    "not a wav": (_not_wav, "not a readable WAV file"),
    "sample width": (_width, "expected 16-bit PCM"),
    "unpaired": (_unpaired, "unpaired: no matching frame (.jpg)"),
    "unreadable jpeg": (_bad_jpeg, "unreadable JPEG"),
    "decompression bomb": (_bomb, "unreadable JPEG (Image size (400000000 pixels) exceeds limit"),
    "bad name": (_bad_name, "is not a Sub-URMP stem"),
    "padded time": (_second_name, "'violin00_01000' is not a Sub-URMP stem <instrument><NN>_<t ms>: write it "
                                  "'violin00_1000'"),
    "non-ASCII digits": (_non_ascii_digits, "is not a Sub-URMP stem"),
    "upper-case suffix": (_upper_case_suffix, "suffix '.WAV': Sub-URMP names end in '.wav'"),
    "odd sample rate": (_odd_rate, "sample rate 48002 Hz is no standard audio rate; expected 44100 Hz"),
    "far-off timestamp": (_far_timestamp, "timestamp 1500000 ms lies 1498.5 s after violin00's previous chunk "
                                          "(1500 ms), more than 600 s: a typo?"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_file_error_names_it_and_writes_nothing(raw, tmp_path, case):
    corrupt, reason = CASES[case]
    path = corrupt(raw)
    out = tmp_path / "prepared"
    with pytest.raises(ValueError) as error:
        prepare(raw, out, [1])
    assert str(path) in str(error.value) and reason in str(error.value)
    assert "\n" not in str(error.value)
    assert not out.exists() and not (tmp_path / ".prepared.tmp").exists()


@pytest.mark.parametrize("case", CASES)
def test_bad_file_skip_lists_it(raw, tmp_path, case):
    corrupt, reason = CASES[case]
    path = corrupt(raw)
    out = tmp_path / "prepared"
    prepare(raw, out, [1], on_bad_file="skip")
    skipped = pd.read_csv(out / "skipped.csv")
    assert skipped.path.tolist() == [str(path)] and reason in skipped.reason[0]
    images = pd.read_csv(out / "images.csv")
    named = ("unpaired", "bad name", "padded time", "non-ASCII digits", "upper-case suffix",
             "far-off timestamp")  # an extra file, not a bad read
    assert len(np.load(out / "images.npy")) == len(images) == 11 + 16 - (case not in named)
    # original_<split> counts the pairs read, as images.csv does; an unreadable one is in skipped.csv instead
    original = pd.read_csv(out / "counts.csv").query("instrument == 'violin' and length_s == 0.5")
    read_train = 11 - (case not in named)
    assert dict(zip(original.split, original.samples)) == {"original_train": read_train, "original_validation": 16}


def test_skipped_chunk_leaves_no_hole_in_images(raw, tmp_path):
    _truncate(raw)
    out = tmp_path / "prepared"
    prepare(raw, out, [1], on_bad_file="skip", image_size=16, hr_image_size=32)
    index = pd.read_csv(out / "index_1s_train.csv")
    images = pd.read_csv(out / "images.csv")
    assert len(np.load(out / "images.npy")) == len(np.load(out / "images_hr.npy")) == len(images)
    assert 1000 not in images.t_ms[images.performance == "violin00"].tolist()
    assert images.t_ms[index.image].tolist() == index.t_ms.tolist()
    assert index.s_ms.tolist() == [0, 100, 200, 300, 400]  # s = 500 (t = 1000) is no longer a start


def test_wrong_sample_rate_is_resampled(raw, tmp_path, caplog):
    path = _wav(raw)
    sf.write(path, np.tile(loud_track(0.5)[::2, None] // 2, (1, 2)).astype(np.int16)[:11025], 22050,
             subtype="PCM_16")
    with caplog.at_level(logging.WARNING):
        prepare(raw, tmp_path / "out", [1])
    assert f"{path}: 22050 Hz, resampling to 44100 Hz" in caplog.text
    assert len(pd.read_csv(tmp_path / "out" / "index_1s_train.csv")) == 6


@pytest.mark.parametrize("make, message", [
    (lambda root: root.mkdir(), "not a folder"),
    (lambda root: [(root / d / "train").mkdir(parents=True) for d in ("chunk", "img")], "train: no instrument folder"),
])
def test_empty_or_missing_layout(tmp_path, make, message):
    root = tmp_path / "Sub-URMP"
    make(root)
    with pytest.raises(ValueError, match=message):
        prepare(root, tmp_path / "out", [1])


def _rename(path, name):
    path.rename(path.with_name(name))


SPLIT_CASES = {  # how a split goes missing or empty -> the folder the error names, and the message
    "validation named test": (lambda raw: _rename(raw / "chunk" / "validation", "test"),
                              "chunk/validation", "missing (found: test, train)"),
    "img/validation missing": (lambda raw: shutil.rmtree(raw / "img" / "validation"),
                               "img/validation", "missing (found: train)"),
    "train missing": (lambda raw: [shutil.rmtree(raw / d / "train") for d in ("chunk", "img")],
                      "chunk/train", "missing (found: validation)"),
    "validation empty": (lambda raw: [shutil.rmtree(raw / d / "validation" / "violin") for d in ("chunk", "img")],
                         "chunk/validation", "no instrument folder"),
    "validation without pairs": (lambda raw: [p.unlink() for d in ("chunk", "img")
                                              for p in (raw / d / "validation" / "violin").iterdir()],
                                 "{chunk,img}/validation", "no chunk/frame pairs found"),
}


@pytest.mark.parametrize("case", SPLIT_CASES)
@pytest.mark.parametrize("on_bad_file", ["error", "skip"])
def test_missing_or_empty_split_is_one_line_naming_it(raw, tmp_path, case, on_bad_file):
    # without train or validation, prepare would write empty val/test (or train) indexes and finetune fail later
    break_split, folder, reason = SPLIT_CASES[case]
    break_split(raw)
    out = tmp_path / "prepared"
    with pytest.raises(ValueError) as error:
        prepare(raw, out, [1], on_bad_file=on_bad_file)
    assert str(error.value).startswith(f"{raw}/{folder}: {reason}") and "\n" not in str(error.value)
    assert not out.exists() and not (tmp_path / ".prepared.tmp").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"lengths": [0]}, "prepare.lengths"),
    ({"lengths": [1.25]}, "prepare.lengths"),
    ({"crop": {"cello": [0.5, 0, 0.2, 1]}}, "prepare.crop.cello"),
    ({"crop": {"piano": [0, 0, 1, 1]}}, "unknown instrument 'piano'"),
    ({"trim": {"violin07": [1, 1]}}, "violin07"),
    # not a list of numbers of the right length: the same one-line error, not a TypeError
    ({"crop": {"cello": 5}}, r"prepare.crop.cello must be \[left, top, right, bottom\]"),
    ({"crop": {"cello": ["a", 0, 1, 1]}}, r"prepare.crop.cello must be \[left, top, right, bottom\]"),
    ({"crop": {"cello": [0.1, 0, 0.9]}}, r"prepare.crop.cello must be \[left, top, right, bottom\]"),
    ({"crop": {"cello": "0 0 1 1"}}, r"prepare.crop.cello must be \[left, top, right, bottom\]"),
    ({"trim": {"violin00": 5}}, r"prepare.trim.violin00 must be \[head_s, tail_s\]"),
    ({"trim": {"violin00": ["a", 1]}}, r"prepare.trim.violin00 must be \[head_s, tail_s\]"),
    ({"trim": {"violin00": [1]}}, r"prepare.trim.violin00 must be \[head_s, tail_s\]"),
    ({"trim": {"violin00": [True, 0]}}, r"prepare.trim.violin00 must be \[head_s, tail_s\]"),
    ({"trim": {"violin00": [float("nan"), 0]}}, r"prepare.trim.violin00 must be \[head_s, tail_s\]"),
    ({"trim": {"violin00": [0.5, -1]}}, r"prepare.trim.violin00 must be \[head_s, tail_s\], the seconds cut at "
                                        r"the start and at the end, both >= 0"),
    ({"on_bad_file": "ignore"}, "prepare.on_bad_file"),
])
def test_bad_params(raw, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare(raw, tmp_path / "out", **{"lengths": [1], **kwargs})


def test_chunk_at_another_rate_names_the_rate(raw, tmp_path):
    path = _wav(raw)
    sf.write(path, np.zeros((22050, 2), np.int16), 48000, subtype="PCM_16")  # 44.1 kHz's frame count, at 48 kHz
    with pytest.raises(ValueError) as error:
        prepare(raw, tmp_path / "out", [1])
    assert str(error.value) == f"{path}: sample rate 48000 Hz, expected 44100 Hz: 22050 frames last 459.375 ms, " \
                               "not a 500 ms chunk"


@pytest.mark.parametrize("kind", ["chunk", "img"])
@pytest.mark.parametrize("empty", [True, False])
def test_unknown_instrument_folder_is_an_error_in_prepare_and_download(raw, tmp_path, kind, empty):
    from a2i.data.download import DownloadError, validate_suburmp

    folder = raw / kind / "train" / "violn"
    folder.mkdir()
    if not empty:
        (folder / "violn00_500.wav").write_bytes(_wav(raw).read_bytes())
    expected = f"{folder.parent}: unknown instrument folder 'violn' (one of bassoon, cello,"
    for on_bad_file in ("error", "skip"):
        with pytest.raises(ValueError) as error:
            prepare(raw, tmp_path / "out", [1], on_bad_file=on_bad_file)
        assert str(error.value).startswith(expected)
    with pytest.raises(DownloadError) as error:
        validate_suburmp(raw)
    assert str(error.value).startswith(expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["raw", "raw/chunk", "parent"])
def test_an_output_folder_overlapping_the_input_is_refused_before_anything_is_removed(raw, where):
    out = {"raw": raw, "raw/chunk": raw / "chunk", "parent": raw.parent}[where]
    files = sorted(raw.rglob("*"))
    with pytest.raises(ValueError, match="the output folder overlaps the Sub-URMP root"):
        prepare(raw, out, [1])
    assert sorted(raw.rglob("*")) == files


def test_an_output_folder_of_other_files_is_refused_and_a_prepared_one_replaced(raw, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="a folder of other files, not one that prepare wrote"):
        prepare(raw, tmp_path / "mine", [1])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    prepare(raw, tmp_path / "out", [1])
    (tmp_path / "out" / "stale.txt").write_text("from an earlier run")
    prepare(raw, tmp_path / "out", [1])
    assert not (tmp_path / "out" / "stale.txt").exists()


def test_a_symlinked_output_folder_is_written_where_it_points(raw, tmp_path):
    (tmp_path / "disk").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "disk")
    prepare(raw, tmp_path / "link", [1])
    assert (tmp_path / "link").is_symlink() and (tmp_path / "disk" / "index_1s_train.csv").is_file()


def test_a_split_whose_every_file_is_skipped_is_an_error_not_an_empty_index(raw, tmp_path):
    for wav in (raw / "chunk" / "validation" / "violin").iterdir():
        wav.write_bytes(b"")
    with pytest.raises(ValueError) as error:
        prepare(raw, tmp_path / "out", [1], on_bad_file="skip")
    assert str(error.value) == (f"{raw}/{{chunk,img}}/validation: no readable chunk/frame pairs (16 bad files "
                                "skipped; prepare.on_bad_file=error names the first)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("head_s, first_start_ms", [(0.05, 100), (0.15, 200), (0.25, 300), (0.3, 300)])
def test_a_trim_off_the_grid_cuts_every_sample_reaching_into_it(raw, tmp_path, head_s, first_start_ms):
    out = prepare(raw, tmp_path / "out", [1], trim={"violin00": [head_s, 0]})
    assert pd.read_csv(out / "index_1s_train.csv").s_ms.min() == first_start_ms
