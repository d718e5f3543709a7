"""`prepare` (thesis 4.2.1): Sub-URMP chunk/frame pairs -> L-second samples with square images, packed.

Every performance's mono track is rebuilt once from its overlapping 0.5 s chunks on the 100 ms grid; a sample
is then just (performance, start, image row), so storage is O(source audio) whatever the lengths.

Rules (one 100 ms grid index k per chunk stem t = 100 k ms; the chunk holds segments k-5 .. k-1):
- a sample of L s starts at s = t - 500 ms for every chunk t and exists iff its 10 L segments are all covered
  by chunks of the performance; its image is the frame of chunk t;
- it is dropped when its mono peak |amplitude| < `silence_peak`, or when it reaches into the first head_s or the
  last tail_s seconds of its performance's covered span (`trim`: [head_s, tail_s] per performance);
- original train -> `train`; an original validation performance is cut at the midpoint m of its covered span
  less the trim (floored to 100 ms): `val` if s + L <= m, `test` if s >= m, else dropped.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image
from tqdm import tqdm

from a2i.data import BOX, ON_BAD_FILE, SILENCE_PEAK, SPAN, is_box, is_span
from a2i.data.layout import (CHUNK_MS, HOP_MS, INSTRUMENTS, LABELS, ORIGINAL_SPLITS, SAMPLE_RATE, SPLITS,
                             check_split_folder, parse_stem)
from a2i.io import write_csv, write_json
from a2i.variants import HR_IMAGES, IMAGES

log = logging.getLogger(__name__)

SEGMENT = SAMPLE_RATE * HOP_MS // 1000  # 4,410 samples per 100 ms
CHUNK_SEGMENTS = CHUNK_MS // HOP_MS  # 5 segments per chunk
CHUNK_FRAMES = CHUNK_SEGMENTS * SEGMENT
MAX_GAP_S = 600  # longer than any URMP piece: a chunk further from its predecessor is a typo'd timestamp
MIN_RATE_GCD = 100  # Hz: standard rates share >= 100 Hz with 44.1 kHz; others (48,002) need a huge resampling kernel


class BadFile(ValueError):
    """An input file that breaks the Sub-URMP format; the message names it."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


@dataclass
class Pair:
    split: str  # original split: train | validation
    instrument: str
    number: int
    t_ms: int
    wav: Path
    jpg: Path

    @property
    def performance(self) -> str:
        return f"{self.instrument}{self.number:02d}"


class BadFiles:
    """Applies `on_bad_file`: raise at the first bad file, or record it and go on."""

    def __init__(self, policy: str):
        if policy not in ON_BAD_FILE:
            raise ValueError(f"prepare.on_bad_file must be 'error' or 'skip', got '{policy}'")
        self.policy, self.rows = policy, []

    def __call__(self, error: BadFile) -> None:
        if self.policy == "error":
            raise error
        log.warning("skipping %s", error)
        self.rows.append({"path": str(error.path), "reason": error.reason})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["path", "reason"])


# ---------------------------------------------------------------- scanning

def scan(raw: Path, bad: BadFiles) -> list[Pair]:
    """All chunk/frame pairs under a Sub-URMP root, sorted by split, instrument, performance, t."""
    raw = Path(raw)
    for sub in ("chunk", "img"):
        if not (raw / sub).is_dir():
            raise ValueError(f"{raw / sub}: not a folder; expected the Sub-URMP layout {raw}/{{chunk,img}}/"
                             f"{{train,validation}}/<instrument>/<instrument><NN>_<t>.{{wav,jpg}}")
    for split in ORIGINAL_SPLITS:  # all of them before any file is read: a misnamed split is no bad file
        for sub in ("chunk", "img"):
            check_split_folder(raw / sub / split)
    pairs = []
    for split in ORIGINAL_SPLITS:
        found = []
        for instrument_dir in sorted(_subdirs(raw / "chunk" / split) | _subdirs(raw / "img" / split)):
            found += _scan_instrument(raw, split, instrument_dir, bad)
        if not found:  # val and test come from validation alone, and fine-tuning needs train
            raise ValueError(f"{raw}/{{chunk,img}}/{split}: no chunk/frame pairs found")
        pairs += found
    pairs.sort(key=lambda p: (ORIGINAL_SPLITS.index(p.split), LABELS[p.instrument], p.number, p.t_ms))
    _check_performance_names(pairs)
    return _drop_far_chunks(pairs, bad)


def _subdirs(path: Path) -> set[str]:
    return {e.name for e in os.scandir(path) if e.is_dir()}


def _files(folder: Path, suffix: str, bad: BadFiles) -> dict[str, Path]:
    """Stem -> path of the `suffix` files in `folder`; one in another case (`.WAV`) is a bad file, not unseen."""
    if not folder.is_dir():
        return {}
    files = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.name.lower().endswith(suffix):
            continue
        if entry.name.endswith(suffix):
            files[entry.name[: -len(suffix)]] = Path(entry.path)
        else:
            bad(BadFile(Path(entry.path), f"suffix '{entry.name[-len(suffix):]}': Sub-URMP names end in '{suffix}'"))
    return files


def _scan_instrument(raw: Path, split: str, instrument: str, bad: BadFiles) -> list[Pair]:
    wavs = _files(raw / "chunk" / split / instrument, ".wav", bad)
    jpgs = _files(raw / "img" / split / instrument, ".jpg", bad)
    pairs = []
    for stem in sorted(wavs.keys() | jpgs.keys()):
        path = wavs.get(stem) or jpgs[stem]
        if stem not in jpgs or stem not in wavs:
            other = "frame (.jpg)" if stem not in jpgs else "chunk (.wav)"
            bad(BadFile(path, f"unpaired: no matching {other} with stem '{stem}'"))
            continue
        try:
            parsed = parse_stem(stem)
        except ValueError as error:
            bad(BadFile(path, str(error)))
            continue
        if parsed.instrument != instrument:
            bad(BadFile(path, f"stem instrument '{parsed.instrument}' differs from its folder '{instrument}'"))
        elif parsed.t_ms < CHUNK_MS or parsed.t_ms % HOP_MS:
            bad(BadFile(path, f"timestamp {parsed.t_ms} ms is not >= {CHUNK_MS} on the {HOP_MS} ms grid"))
        else:
            pairs.append(Pair(split, instrument, parsed.performance, parsed.t_ms, wavs[stem], jpgs[stem]))
    return pairs


def _drop_far_chunks(pairs: list[Pair], bad: BadFiles) -> list[Pair]:
    """A chunk more than MAX_GAP_S after its performance's previous one is a bad file: a typo'd timestamp would
    otherwise stretch the performance's track, and tracks.npy, over the whole gap."""
    kept, last = [], {}
    for pair in pairs:
        previous = last.get(pair.performance)
        if previous is not None and pair.t_ms - previous > MAX_GAP_S * 1000:
            bad(BadFile(pair.wav, f"timestamp {pair.t_ms} ms lies {(pair.t_ms - previous) / 1000:g} s after "
                                  f"{pair.performance}'s previous chunk ({previous} ms), more than {MAX_GAP_S} s: "
                                  "a typo?"))
            continue
        last[pair.performance] = pair.t_ms
        kept.append(pair)
    return kept


def _check_performance_names(pairs: list[Pair]) -> None:
    splits: dict[str, str] = {}
    for pair in pairs:
        if splits.setdefault(pair.performance, pair.split) != pair.split:
            raise ValueError(f"performance '{pair.performance}' appears in both the train and validation folders "
                             f"(e.g. {pair.wav}); Sub-URMP splits by performance")


# ---------------------------------------------------------------- audio

def read_chunk(path: Path) -> np.ndarray:
    """Mono int16 [22,050] of one chunk (mean of the channels); resampled with a warning if not 44.1 kHz."""
    try:
        with sf.SoundFile(path) as f:
            rate, subtype, frames, fmt = f.samplerate, f.subtype, f.frames, f.format
            data = f.read(dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise BadFile(path, f"not a readable WAV file ({error})") from None
    if fmt != "WAV":
        raise BadFile(path, f"format {fmt}, expected WAV")
    if subtype != "PCM_16":
        raise BadFile(path, f"sample format {subtype}, expected 16-bit PCM (PCM_16)")
    if math.gcd(rate, SAMPLE_RATE) < MIN_RATE_GCD:
        raise BadFile(path, f"sample rate {rate} Hz is no standard audio rate; expected {SAMPLE_RATE} Hz")
    if frames * 1000 != rate * CHUNK_MS or len(data) != frames:
        raise BadFile(path, _wrong_length(len(data), rate))
    mono = np.rint(data.mean(axis=1)) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        log.warning("%s: %d Hz, resampling to %d Hz", path, rate, SAMPLE_RATE)
        mono = _resample(mono, rate)
    return mono.astype(np.int16)


def _wrong_length(frames: int, rate: int) -> str:
    """Why a chunk is not 500 ms long. Any standard rate is resampled, so at another rate than 44.1 kHz the rate is the
    likelier mistake (e.g. 22,050 frames written at 48 kHz): name it rather than guess truncation."""
    if rate != SAMPLE_RATE:
        return (f"sample rate {rate} Hz, expected {SAMPLE_RATE} Hz: {frames} frames last {frames * 1000 / rate:g} ms, "
                f"not a {CHUNK_MS} ms chunk")
    return f"{frames} frames, expected {CHUNK_FRAMES} (a {CHUNK_MS} ms chunk at {SAMPLE_RATE} Hz); truncated?"


def _resample(mono: np.ndarray, rate: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(mono.astype(np.float32)), rate, SAMPLE_RATE).numpy()
    out = np.resize(out, CHUNK_FRAMES) if len(out) != CHUNK_FRAMES else out
    return np.clip(np.rint(out), -32768, 32767)


@dataclass
class Track:
    """A performance's mono track on the 100 ms grid: segment `first + j` is `audio[j*4410 : (j+1)*4410]`."""

    first: int  # grid index of the first segment
    audio: np.ndarray  # int16 [segments * 4410]
    covered: np.ndarray  # bool [segments]
    disagreeing: int  # segments on which overlapping chunks differ


def build_track(ks: np.ndarray, chunks: np.ndarray, first: int, segments: int, out: np.ndarray) -> Track:
    """Write chunks (int16 [n, 22050], chunk k holds segments k-5..k-1) into `out` (int16 [segments * 4410])."""
    pieces = chunks.reshape(len(ks), CHUNK_SEGMENTS, SEGMENT).reshape(-1, SEGMENT)
    where = (ks[:, None] - CHUNK_SEGMENTS + np.arange(CHUNK_SEGMENTS) - first).reshape(-1)
    grid = out.reshape(segments, SEGMENT)
    seen, first_piece = np.unique(where, return_index=True)
    grid[seen] = pieces[first_piece]
    differs = np.any(pieces != grid[where], axis=1)
    covered = np.zeros(segments, bool)
    covered[seen] = True
    return Track(first, out, covered, int(np.unique(where[differs]).size))


# ---------------------------------------------------------------- images

def crop_box(instrument: str, crop: dict, width: int, height: int) -> tuple[float, float, float, float]:
    """Pixel box [l, t, r, b] from the instrument's normalised box, default the centred full-height square."""
    if instrument in crop:
        left, top, right, bottom = crop[instrument]
        return left * width, top * height, right * width, bottom * height
    side = min(width, height)
    return (width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2


def validate_crop(crop: dict) -> dict:
    for instrument, box in crop.items():
        if instrument not in LABELS:
            raise ValueError(f"prepare.crop: unknown instrument '{instrument}' (one of {', '.join(INSTRUMENTS)})")
        if not is_box(box):
            raise ValueError(f"prepare.crop.{instrument} must be {BOX}, got {box}")
    return crop


def read_frame(path: Path, instrument: str, crop: dict, sizes: tuple[int, ...]) -> list[np.ndarray]:
    """uint8 [size, size, 3] per size of `sizes`: the same crop, antialiased-resized. Each size is decoded on its
    own (JPEG DCT-downscaled first when much larger than that size), so that one size's pixels never depend on
    which other sizes are asked for (images.npy on prepare.hr_image_size)."""
    return [_read_crop(path, instrument, crop, size) for size in sizes]


def _read_crop(path: Path, instrument: str, crop: dict, size: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.format != "JPEG":
                raise BadFile(path, f"format {image.format}, expected JPEG")
            box = crop_box(instrument, crop, *image.size)
            scale = min((box[2] - box[0]), (box[3] - box[1])) / (2 * size)
            if scale >= 2:  # decode at 1/2..1/8 size, still >= 2x the target: fast and still antialiased
                image.draft("RGB", (int(image.size[0] / scale), int(image.size[1] / scale)))
                box = crop_box(instrument, crop, *image.size)
            return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS, box=box))
    except BadFile:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise BadFile(path, f"unreadable JPEG ({error})") from None


# ---------------------------------------------------------------- samples

def validate_lengths(lengths) -> list[float]:
    values = [float(x) for x in (lengths if isinstance(lengths, (list, tuple)) else [lengths])]
    if not values or any(x <= 0 or abs(x * 10 - round(x * 10)) > 1e-9 for x in values):
        raise ValueError(f"prepare.lengths must be positive multiples of 0.1 s, got {lengths}")
    return sorted(set(values))


def validate_trim(trim: dict) -> dict[str, tuple[float, float]]:
    out = {}
    for performance, span in trim.items():
        if not is_span(span):
            raise ValueError(f"prepare.trim.{performance} must be {SPAN}, got {span}")
        out[performance] = (float(span[0]), float(span[1]))
    return out


def sliding_max(values: np.ndarray, width: int) -> np.ndarray:
    """max(values[i : i + width]) for every i with a full window."""
    if width > len(values):
        return np.zeros(0, values.dtype)
    return np.lib.stride_tricks.sliding_window_view(values, width).max(axis=1)


def select_samples(ks: np.ndarray, track: Track, segment_peak: np.ndarray, length_s: float, silence_peak: int,
                   original_split: str, trim: tuple[float, float] = (0.0, 0.0)) -> dict[str, np.ndarray]:
    """Track-relative start segments of the samples of one performance, per split (`train` or `val`/`test`)."""
    n = int(round(length_s * 10))
    starts = ks - CHUNK_SEGMENTS - track.first  # sample s = t - 500 ms, as a segment index into the track
    starts = starts[starts + n <= len(track.covered)]
    covered_sum = np.concatenate([[0], np.cumsum(track.covered)])
    complete = covered_sum[starts + n] - covered_sum[starts] == n
    loud = sliding_max(segment_peak, n)[starts] >= silence_peak
    lo, hi = kept_span(track, trim)
    inside = (starts >= lo) & (starts + n <= hi)
    starts = starts[complete & loud & inside]
    if original_split == "train":
        return {"train": starts}
    middle = val_test_cut(track, trim)
    return {"val": starts[starts + n <= middle], "test": starts[starts >= middle]}


def kept_span(track: Track, trim: tuple[float, float] = (0.0, 0.0)) -> tuple[int, int]:
    """[lo, hi) in track segments: the covered span less the trimmed seconds at each end (whole segments, all of
    the trimmed span)."""
    span = np.flatnonzero(track.covered)
    trim_lo, trim_hi = (math.ceil(x * 10 - 1e-9) for x in trim)
    return int(span[0]) + trim_lo, int(span[-1]) + 1 - trim_hi


def val_test_cut(track: Track, trim: tuple[float, float] = (0.0, 0.0)) -> int:
    """The track segment where an original validation performance is cut into `val` (before) and `test` (from
    it on): the midpoint of the span kept, floored to the 100 ms grid."""
    lo, hi = kept_span(track, trim)
    return (lo + hi) // 2


def index_name(length_s: float, split: str) -> str:
    return f"index_{length_s:g}s_{split}.csv"


# ---------------------------------------------------------------- the stage

INDEX_COLUMNS = ["performance", "instrument", "label", "start", "image", "t_ms", "s_ms"]
IMAGE_FILES = (IMAGES, HR_IMAGES)  # the crops at prepare.image_size and at prepare.hr_image_size


def prepare(raw: str | Path, out: str | Path, lengths, silence_peak: int = SILENCE_PEAK, image_size: int = 64,
            crop: dict | None = None, trim: dict | None = None, on_bad_file: str = "error",
            metrics: str | Path | None = None, hr_image_size: int | None = None) -> Path:
    """Build `out/` (tracks.npy, images.npy, performances.csv, images.csv, index_<L>s_<split>.csv,
    counts.csv, skipped.csv) from a Sub-URMP root. The folder is built aside and swapped in at the end.
    counts.csv: per instrument, the chunk/frame pairs read per original split (`original_<split>`, listed at
    length 0.5; the pairs not read are in skipped.csv) and the samples per split and length.
    `hr_image_size`: also images_hr.npy, the same crops at this side (the super-resolution stages' targets).
    `metrics`: also write the counts there as a DVC metric (JSON: split -> length -> instrument -> samples)."""
    lengths = validate_lengths(lengths)
    crop, trim = validate_crop(dict(crop or {})), validate_trim(dict(trim or {}))
    if image_size < 1:
        raise ValueError(f"prepare.image_size must be >= 1, got {image_size}")
    if hr_image_size is not None and hr_image_size <= image_size:
        raise ValueError(f"prepare.hr_image_size must be above prepare.image_size={image_size}, got {hr_image_size}")
    sizes = (image_size,) if hr_image_size is None else (image_size, hr_image_size)
    out = _output_folder(Path(raw), Path(out))
    bad = BadFiles(on_bad_file)
    pairs = scan(Path(raw), bad)
    performances = _group(pairs)
    unknown = sorted(set(trim) - set(performances))
    if unknown:
        raise ValueError(f"prepare.trim names performances not in {raw}: {', '.join(unknown)}")
    tmp = out.parent / f".{out.name}.tmp"
    _remove(tmp)
    tmp.mkdir(parents=True)
    try:
        read = _build(performances, tmp, lengths, silence_peak, sizes, crop, trim, bad)
        _check_every_split_read(read, Path(raw), len(bad.rows))
        write_csv(tmp / "counts.csv", _counts(tmp, read, lengths))
        write_csv(tmp / "skipped.csv", bad.frame())
        _remove(out)
        tmp.rename(out)
    finally:
        _remove(tmp)
    if bad.rows:
        log.warning("skipped %d bad files; see %s", len(bad.rows), out / "skipped.csv")
    if metrics:
        write_json(metrics, counts_metric(pd.read_csv(out / "counts.csv")))
    return out


def _output_folder(raw: Path, out: Path) -> Path:
    """`out` resolved (a symlink's folder is replaced, the link kept), checked before any work: prepare replaces
    it whole, so it may not overlap `raw` nor be a folder of other files."""
    target = out.resolve()
    if raw.resolve().is_relative_to(target) or target.is_relative_to(raw.resolve()):
        raise ValueError(f"{out}: the output folder overlaps the Sub-URMP root {raw}, and prepare replaces it whole; "
                         "write it elsewhere")
    if target.exists() and not target.is_dir():
        raise ValueError(f"{out}: a file, not a folder; prepare writes a folder there")
    if target.is_dir() and any(target.iterdir()) and not (target / "counts.csv").is_file():
        raise ValueError(f"{out}: a folder of other files, not one that prepare wrote; prepare replaces its output "
                         "folder whole, so give it a new or empty one")
    return target


def _check_every_split_read(read: Counter, raw: Path, skipped: int) -> None:
    """Every original split must keep pairs (val and test come from validation alone, and fine-tuning needs
    train), also when all of one split's files are bad and skipped."""
    for split in ORIGINAL_SPLITS:
        if not any(n for (_, original), n in read.items() if original == split):
            raise ValueError(f"{raw}/{{chunk,img}}/{split}: no readable chunk/frame pairs ({skipped} bad files "
                             "skipped; prepare.on_bad_file=error names the first)")


def counts_metric(counts: pd.DataFrame) -> dict:
    """counts.csv as nested JSON, with a total per (split, length), for `dvc metrics show/diff`."""
    metric: dict = {}
    for (split, length), group in counts.groupby(["split", "length_s"], sort=False):
        per_instrument = dict(zip(group["instrument"], group["samples"].astype(int).tolist()))
        metric.setdefault(split, {})[f"{length:g}s"] = per_instrument | {"total": int(group["samples"].sum())}
    return metric


def _group(pairs: list[Pair]) -> dict[str, list[Pair]]:
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.performance, []).append(pair)
    return groups


def _build(performances: dict[str, list[Pair]], tmp: Path, lengths: list[float], silence_peak: int,
           sizes: tuple[int, ...], crop: dict, trim: dict, bad: BadFiles) -> Counter:
    """Write everything but counts.csv and skipped.csv into `tmp`; returns the pairs read per (instrument,
    original split)."""
    # Track extents follow from the names alone, so tracks.npy is filled in place (memory O(one performance)).
    extents, offset = {}, 0
    for name, group in performances.items():
        first = group[0].t_ms // HOP_MS - CHUNK_SEGMENTS
        segments = group[-1].t_ms // HOP_MS - first
        extents[name] = (offset, first, segments)
        offset += segments * SEGMENT
    n_pairs = sum(len(g) for g in performances.values())
    tracks = np.lib.format.open_memmap(tmp / "tracks.npy", "w+", np.int16, (offset,))
    images = [np.lib.format.open_memmap(tmp / f".{name}", "w+", np.uint8, (n_pairs, size, size, 3))
              for name, size in zip(IMAGE_FILES, sizes)]
    image_rows: list[dict] = []
    perf_rows: list[dict] = []
    samples: dict[tuple[float, str], list[pd.DataFrame]] = {(L, s): [] for L in lengths for s in SPLITS}
    read: Counter = Counter()
    with tqdm(total=n_pairs, desc="prepare", unit="pair") as progress:
        for name, group in performances.items():
            offset, first, segments = extents[name]
            result = _read_pairs(group, images, image_rows, tracks[offset:offset + segments * SEGMENT], first,
                                 crop, sizes, bad, progress)
            if result is None:
                continue
            track, ks = result
            rows = np.arange(len(image_rows) - len(ks), len(image_rows))
            split = group[0].split
            read[(group[0].instrument, split)] += len(ks)
            for length in lengths:
                selected = select_samples(ks, track, _segment_peaks(track), length, silence_peak, split,
                                          trim.get(name, (0.0, 0.0)))
                for sample_split, starts in selected.items():
                    samples[(length, sample_split)].append(_index_rows(name, group[0].instrument, offset, track,
                                                                       ks, rows, starts))
            perf_rows.append(_performance_row(name, group[0], offset, track, len(ks), trim.get(name, (0.0, 0.0))))
    tracks.flush()
    del tracks
    for name, array in zip(IMAGE_FILES, images):
        _save_images(tmp, name, array, len(image_rows))
    write_csv(tmp / "performances.csv", pd.DataFrame(perf_rows))
    write_csv(tmp / "images.csv", pd.DataFrame(image_rows, columns=["image", "performance", "instrument", "label",
                                                                     "t_ms"]))
    for (length, split), frames in samples.items():
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=INDEX_COLUMNS)
        write_csv(tmp / index_name(length, split), frame[INDEX_COLUMNS])
    return read


def _read_pairs(group: list[Pair], images: list[np.ndarray], image_rows: list[dict], out: np.ndarray, first: int,
                crop: dict, sizes: tuple[int, ...], bad: BadFiles, progress) -> tuple[Track, np.ndarray] | None:
    """Read one performance's pairs: frames into `images` (one array per size), chunks into its track (`out`);
    None if all bad."""
    ks, chunks = [], []
    for pair in group:
        progress.update()
        try:
            mono = read_chunk(pair.wav)
            for array, frame in zip(images, read_frame(pair.jpg, pair.instrument, crop, sizes)):
                array[len(image_rows)] = frame
        except BadFile as error:
            bad(error)
            continue
        ks.append(pair.t_ms // HOP_MS)
        chunks.append(mono)
        image_rows.append({"image": len(image_rows), "performance": pair.performance, "instrument": pair.instrument,
                           "label": LABELS[pair.instrument], "t_ms": pair.t_ms})
    if not ks:
        return None
    ks = np.asarray(ks)
    track = build_track(ks, np.stack(chunks), first, len(out) // SEGMENT, out)
    if track.disagreeing:
        log.warning("%s: overlapping chunks disagree on %d of %d segments (the first chunk's audio is kept)",
                    group[0].performance, track.disagreeing, len(track.covered))
    return track, ks


def _segment_peaks(track: Track) -> np.ndarray:
    return np.abs(track.audio.reshape(-1, SEGMENT).astype(np.int32)).max(axis=1)


def _index_rows(name: str, instrument: str, offset: int, track: Track, ks: np.ndarray, rows: np.ndarray,
                starts: np.ndarray) -> pd.DataFrame:
    """Index rows of the samples starting at track segments `starts` (sample s = chunk t - 500 ms)."""
    image_of = dict(zip(ks - CHUNK_SEGMENTS - track.first, rows))
    return pd.DataFrame({
        "performance": name, "instrument": instrument, "label": LABELS[instrument],
        "start": offset + starts * SEGMENT, "image": [image_of[s] for s in starts],
        "t_ms": (starts + track.first + CHUNK_SEGMENTS) * HOP_MS, "s_ms": (starts + track.first) * HOP_MS})


def _performance_row(name: str, pair: Pair, offset: int, track: Track, chunks: int,
                     trim: tuple[float, float]) -> dict:
    span = np.flatnonzero(track.covered)
    midpoint = (val_test_cut(track, trim) + track.first) * HOP_MS if pair.split == "validation" else -1
    return {"performance": name, "instrument": pair.instrument, "label": LABELS[pair.instrument],
            "split": pair.split, "offset": offset, "samples": len(track.audio), "first_ms": track.first * HOP_MS,
            "chunks": chunks, "covered_ms": len(span) * HOP_MS, "midpoint_ms": midpoint,
            "disagreeing_segments": track.disagreeing}


def _save_images(tmp: Path, name: str, images: np.memmap, rows: int) -> None:
    """`name` (images.npy, images_hr.npy) holds only the rows of pairs that were read (skipped pairs leave no
    gap)."""
    images.flush()
    if rows == len(images):
        del images
        os.replace(tmp / f".{name}", tmp / name)
        return
    kept = np.lib.format.open_memmap(tmp / name, "w+", np.uint8, (rows, *images.shape[1:]))
    kept[:] = images[:rows]
    kept.flush()
    del kept, images
    (tmp / f".{name}").unlink()


def _counts(tmp: Path, read: Counter, lengths: list[float]) -> pd.DataFrame:
    rows = []
    for instrument in INSTRUMENTS:
        for split in ORIGINAL_SPLITS:
            rows.append((instrument, f"original_{split}", 0.5, read[(instrument, split)]))
    for length in lengths:
        for split in SPLITS:
            per = pd.read_csv(tmp / index_name(length, split), usecols=["instrument"])["instrument"].value_counts()
            rows += [(instrument, split, length, int(per.get(instrument, 0))) for instrument in INSTRUMENTS]
    return pd.DataFrame(rows, columns=["instrument", "split", "length_s", "samples"])


def _remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
