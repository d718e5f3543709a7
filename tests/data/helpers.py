"""Tiny hand-built Sub-URMP trees: a continuous mono track per performance, cut into real-format chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

SR = 44_100
SEG = 4_410  # 100 ms
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "data"


def loud_track(seconds: float, seed: int = 0, peak: int = 5000) -> np.ndarray:
    """int16 mono track whose every 100 ms segment reaches `peak`."""
    rng = np.random.default_rng(seed)
    track = rng.integers(-peak // 2, peak // 2, int(round(seconds * SR))).astype(np.int16)
    track[::SEG] = peak
    return track


def quiet_track(seconds: float, seed: int = 0) -> np.ndarray:
    """int16 mono track with peak 100 (silent for the 450 threshold)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-100, 101, int(round(seconds * SR))).astype(np.int16)


def frame(colour, size=(64, 36)) -> Image.Image:
    return Image.new("RGB", size, tuple(colour))


def write_performance(root: Path, split: str, instrument: str, number: int, track: np.ndarray,
                      ts: list[int] | None = None, colour=(200, 30, 30), size=(64, 36)) -> list[str]:
    """Write chunks t (ms) of `track` (chunk t holds [t-500, t)); default every t on the grid. Returns stems."""
    ts = ts if ts is not None else list(range(500, len(track) * 1000 // SR + 1, 100))
    chunk_dir = root / "chunk" / split / instrument
    img_dir = root / "img" / split / instrument
    chunk_dir.mkdir(parents=True, exist_ok=True)
    img_dir.mkdir(parents=True, exist_ok=True)
    stems = []
    for t in ts:
        stem = f"{instrument}{number:02d}_{t}"
        end = t // 100 * SEG
        mono = track[end - 5 * SEG:end]
        sf.write(chunk_dir / f"{stem}.wav", np.stack([mono, mono], 1), SR, subtype="PCM_16")
        frame(colour, size).save(img_dir / f"{stem}.jpg", quality=95)
        stems.append(stem)
    return stems


def write_stub(root: Path, split: str, size=(64, 36)) -> list[str]:
    """One silent chunk, `bassoon99_500`, in `split`: prepare needs both original splits, and this one adds no
    sample (too short for 1 s, too quiet for 0.5 s) to a test about the other split."""
    return write_performance(root, split, "bassoon", 99, quiet_track(0.5), ts=[500], size=size)
