"""The embedded synthetic Sub-URMP: a seeded stand-in with the real layout, naming and file formats.

Each performance is one continuous mono signal (a melody with rests, between a quiet noise floor at its start
and end) written as the real 0.5 s stereo chunks on a 100 ms hop, plus one 16:9 JPEG frame per chunk showing a
seated player with a class-specific instrument in front of a blue curtain. Instruments differ the way real ones
do (pitch range, harmonic spectrum, envelope, vibrato; families closer to each other) and, so that small models
learn quickly, their colours and shapes are strongly class-specific in the centred square crop.

Every instrument also has its own resonance: a band of noise (bow, breath, valves) at a fixed, instrument-specific
frequency whatever the note. It plays the part of the pretrained AudioCLIP that the thesis starts from (text
query accuracy 0.99 after one epoch): without it a randomly initialised tiny audio head confuses the instruments
whose pitch ranges and spectra overlap (violin/viola, sax/trombone, tuba/double bass, cello/double bass) and
reaches 0.69 text query accuracy at 2 s in the default run; with it, 1.00 after one epoch (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw
from tqdm import tqdm

from a2i.data.layout import CHUNK_MS, HOP_MS, INSTRUMENTS, SAMPLE_RATE, Stem

log = logging.getLogger(__name__)

NOISE_PEAK = 300  # noise floor bound (int16): below the 450 silence threshold of prepare
EDGE_SECONDS = 0.8  # noise-only lead-in and tail of every performance
HARMONICS = 12
RESONANCE_LEVEL = 0.15  # RMS of the noise band relative to the harmonic part
RESONANCE_WIDTH = 250.0  # Hz
INSTRUMENT_SCALE = 1.2  # instruments drawn larger than life so they dominate the square crop


@dataclass(frozen=True)
class Voice:
    """How an instrument sounds: MIDI range, harmonic amplitudes, envelope (s), vibrato and resonance."""

    low: int
    high: int
    harmonics: tuple[float, ...]
    attack: float
    release: float
    vibrato_hz: float
    vibrato_cents: float
    resonance: float  # Hz: centre of the instrument's own noise band, the same for every note
    breath: float = 0.0  # relative level of band noise (flute, sax)
    brighten: float = 0.0  # brass: upper harmonics grow with loudness


def _power(exponent: float, odd_only: float = 1.0) -> tuple[float, ...]:
    """Harmonic amplitudes k^-exponent; `odd_only` < 1 weakens the even harmonics (clarinet)."""
    return tuple((k ** -exponent) * (1.0 if k % 2 else odd_only) for k in range(1, HARMONICS + 1))


def _formant(peak: int, width: float) -> tuple[float, ...]:
    """Harmonic amplitudes peaking at harmonic `peak` (nasal double reeds)."""
    return tuple(float(np.exp(-((np.log(k / peak)) ** 2) / (2 * width**2))) for k in range(1, HARMONICS + 1))


STRINGS = dict(attack=0.06, release=0.12, vibrato_hz=5.5, vibrato_cents=25.0)
WOODWIND = dict(attack=0.04, release=0.06, vibrato_hz=5.0, vibrato_cents=8.0)
BRASS = dict(attack=0.03, release=0.08, vibrato_hz=4.5, vibrato_cents=5.0)

VOICES: dict[str, Voice] = {
    "violin": Voice(67, 88, _power(1.0), **STRINGS, resonance=12500.0),
    "viola": Voice(58, 79, _power(1.1), **STRINGS, resonance=9500.0),
    "cello": Voice(45, 67, _power(1.2), **STRINGS, resonance=4500.0),
    "double_bass": Voice(33, 52, _power(1.4), **{**STRINGS, "vibrato_cents": 15.0}, resonance=2500.0),
    "flute": Voice(72, 93, (1.0, 0.35, 0.12, 0.05) + (0.0,) * (HARMONICS - 4), **{**WOODWIND, "vibrato_cents": 15.0},
                   breath=0.08, resonance=13500.0),
    "oboe": Voice(62, 84, _formant(3, 0.6), **WOODWIND, resonance=11500.0),
    "clarinet": Voice(52, 77, _power(1.0, odd_only=0.08), **WOODWIND, resonance=8500.0),
    "bassoon": Voice(36, 60, _formant(4, 0.8), **WOODWIND, resonance=3500.0),
    "sax": Voice(52, 76, _power(0.8), **{**WOODWIND, "vibrato_cents": 20.0}, breath=0.03, resonance=7500.0),
    "trumpet": Voice(60, 80, _power(0.5), **BRASS, brighten=1.0, resonance=10500.0),
    "horn": Voice(45, 69, _power(2.0), **BRASS, brighten=0.4, resonance=6500.0),
    "trombone": Voice(40, 65, _power(0.9), **BRASS, brighten=0.8, resonance=5500.0),
    "tuba": Voice(28, 50, _power(1.6), **BRASS, brighten=0.5, resonance=1500.0),
}

# Part = (kind, x, y, a, b, angle_deg): ellipse (semi-axes a, b), rect (length a, width b), ring (radius a,
# line width b), in units of the frame height relative to the player's lap; y points down.
Part = tuple[str, float, float, float, float, float]
LOOKS: dict[str, tuple[tuple[int, int, int], tuple[Part, ...]]] = {
    "violin": ((120, 220, 60), (("ellipse", -0.10, -0.20, 0.13, 0.075, 25), ("ellipse", 0.0, -0.15, 0.10, 0.06, 25),
                                ("rect", 0.02, -0.22, 0.55, 0.015, -35))),
    "viola": ((170, 60, 210), (("ellipse", -0.10, -0.18, 0.14, 0.075, 25), ("ellipse", 0.0, -0.13, 0.10, 0.06, 25),
                               ("rect", 0.02, -0.20, 0.55, 0.015, -35))),
    "cello": ((235, 125, 25), (("ellipse", 0.0, 0.04, 0.12, 0.10, 0), ("ellipse", 0.0, 0.20, 0.15, 0.12, 0),
                               ("rect", 0.0, -0.18, 0.34, 0.04, 90), ("rect", 0.0, 0.12, 0.40, 0.012, 10))),
    "double_bass": ((150, 75, 0), (("ellipse", 0.05, -0.05, 0.17, 0.15, 0), ("ellipse", 0.05, 0.20, 0.22, 0.18, 0),
                                    ("rect", 0.05, -0.38, 0.40, 0.05, 90))),
    "flute": ((235, 235, 245), (("rect", 0.16, -0.28, 0.55, 0.07, 0), ("ellipse", 0.30, -0.28, 0.06, 0.06, 0),
                                ("ellipse", 0.10, -0.28, 0.06, 0.06, 0))),
    "oboe": ((0, 150, 130), (("rect", 0.08, -0.10, 0.45, 0.085, 65), ("ellipse", 0.16, 0.09, 0.07, 0.06, 65))),
    "clarinet": ((15, 15, 15), (("rect", 0.0, -0.08, 0.45, 0.06, 90), ("ellipse", 0.0, 0.15, 0.07, 0.05, 0),
                                ("ellipse", 0.0, -0.05, 0.02, 0.02, 0))),
    "bassoon": ((140, 20, 35), (("rect", 0.0, -0.10, 0.75, 0.08, 70), ("rect", -0.08, -0.30, 0.12, 0.02, 0))),
    "sax": ((255, 105, 180), (("rect", 0.05, -0.02, 0.40, 0.07, 90), ("ellipse", 0.12, 0.18, 0.09, 0.06, 0),
                              ("rect", 0.13, 0.05, 0.12, 0.07, 90))),
    "trumpet": ((255, 50, 10), (("rect", 0.15, -0.28, 0.32, 0.07, 0), ("ellipse", 0.33, -0.28, 0.06, 0.10, 0),
                                ("rect", 0.12, -0.22, 0.12, 0.06, 0))),
    "horn": ((250, 200, 30), (("ring", 0.0, 0.0, 0.16, 0.065, 0), ("ellipse", 0.16, 0.08, 0.09, 0.07, 0))),
    "trombone": ((255, 245, 140), (("rect", 0.25, -0.31, 0.60, 0.045, 0), ("rect", 0.25, -0.21, 0.60, 0.045, 0),
                                   ("ellipse", -0.10, -0.30, 0.10, 0.10, 0))),
    "tuba": ((60, 200, 235), (("ellipse", 0.0, 0.08, 0.17, 0.22, 0), ("ellipse", 0.05, -0.20, 0.15, 0.06, 0))),
}
SHIRTS = ((55, 55, 60), (95, 95, 95), (200, 200, 195), (40, 40, 70), (110, 100, 80), (70, 30, 30))
SKINS = ((240, 200, 170), (200, 150, 110), (140, 95, 65), (90, 60, 40))


def performance_ids(train_performances: int, validation_performances: int) -> dict[str, list[int]]:
    """Performance numbers NN per original split: train first, then validation (distinct NN, as in Sub-URMP)."""
    total = train_performances + validation_performances
    return {"train": list(range(train_performances)), "validation": list(range(train_performances, total))}


def _melody(rng: np.random.Generator, voice: Voice, seconds: float) -> list[tuple[float, float, float]]:
    """(onset s, duration s, MIDI pitch) notes in phrases with rests, inside the noise-only edges."""
    notes, t = [], EDGE_SECONDS
    pitch = rng.integers(voice.low + 4, voice.high - 4)
    end = seconds - EDGE_SECONDS
    while t < end:
        if rng.random() < 0.15:  # a rest between phrases; the next phrase starts anywhere in the range, so
            t += rng.choice([0.2, 0.3, 0.4])  # every performance (test ones too) spans the instrument's range
            pitch = rng.integers(voice.low, voice.high + 1)
            continue
        duration = min(rng.choice([0.2, 0.3, 0.4, 0.6, 0.8]), end - t)
        pitch = int(np.clip(pitch + rng.choice([-4, -3, -2, -1, 1, 2, 3, 5]), voice.low, voice.high))
        notes.append((t, duration, pitch))
        t += duration
    return notes


def synthesize_audio(rng: np.random.Generator, voice: Voice, seconds: float) -> np.ndarray:
    """One performance: int16 mono [seconds * SAMPLE_RATE]."""
    n = int(round(seconds * SAMPLE_RATE))
    f0 = np.zeros(n, np.float32)
    env = np.zeros(n, np.float32)
    for onset, duration, pitch in _melody(rng, voice, seconds):
        a, b = int(onset * SAMPLE_RATE), min(n, int((onset + duration) * SAMPLE_RATE))
        local = np.arange(b - a, dtype=np.float32) / SAMPLE_RATE
        f0[a:b] = 440.0 * 2 ** ((pitch - 69) / 12)
        rise = np.clip(local / voice.attack, 0, 1)
        fall = np.clip((duration - local) / voice.release, 0, 1)
        env[a:b] = rise * fall * rng.uniform(0.6, 1.0) * (1 - 0.15 * local / max(duration, 1e-3))
    time = np.arange(n, dtype=np.float32) / SAMPLE_RATE
    vibrato = 2 ** (voice.vibrato_cents / 1200 * np.sin(2 * np.pi * voice.vibrato_hz * time + rng.uniform(0, 6.3)))
    freq = f0 * vibrato.astype(np.float32)
    phase = (2 * np.pi / SAMPLE_RATE) * np.cumsum(freq, dtype=np.float64)
    phase = np.mod(phase, 2 * np.pi * 64).astype(np.float32)  # keep float32 sin accurate
    signal = np.zeros(n, np.float32)
    for k, amplitude in enumerate(voice.harmonics, start=1):
        if amplitude < 1e-3:
            continue
        weight = amplitude * (1 + voice.brighten * (env - 0.5) * (k - 1) / HARMONICS)
        signal += weight * np.sin(k * phase) * (k * freq < 0.45 * SAMPLE_RATE)
    signal += RESONANCE_LEVEL * signal.std() * _band_noise(rng, n, voice.resonance)
    if voice.breath:
        signal += voice.breath * np.convolve(rng.standard_normal(n).astype(np.float32), np.ones(8) / 8, "same")
    signal *= env
    signal *= rng.uniform(0.45, 0.75) * 32767 / max(float(np.abs(signal).max()), 1e-6)
    noise = np.clip(rng.normal(0, 30, n), -NOISE_PEAK, NOISE_PEAK).astype(np.float32)
    return np.clip(signal + noise, -32768, 32767).astype(np.int16)


def _band_noise(rng: np.random.Generator, n: int, centre_hz: float) -> np.ndarray:
    """Unit-RMS white noise through a Gaussian band-pass (std RESONANCE_WIDTH Hz) at `centre_hz`."""
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    gain = np.exp(-0.5 * ((freqs - centre_hz) / RESONANCE_WIDTH) ** 2)
    band = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * gain, n)
    return (band / max(float(band.std()), 1e-12)).astype(np.float32)


def _polygon(kind: str, x: float, y: float, a: float, b: float, angle: float, n: int = 28) -> np.ndarray:
    """Outline points (unit: frame height) of a rotated ellipse or rectangle centred at (x, y)."""
    if kind == "rect":
        pts = np.array([[-a / 2, -b / 2], [a / 2, -b / 2], [a / 2, b / 2], [-a / 2, b / 2]])
    else:
        theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
        pts = np.stack([a * np.cos(theta), b * np.sin(theta)], 1)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    return pts @ np.array([[c, s], [-s, c]]) + [x, y]


class FramePainter:
    """Draws the frames of one performance: fixed stage and clothes, small movement per frame."""

    def __init__(self, rng: np.random.Generator, instrument: str, width: int, height: int):
        self.width, self.height, self.instrument = width, height, instrument
        self.rng = rng
        self.x0 = width / 2 / height + rng.uniform(-0.06, 0.06)  # player position (units of height)
        self.y0 = 0.62 + rng.uniform(-0.03, 0.03)
        self.shirt = SHIRTS[rng.integers(len(SHIRTS))]
        self.skin = SKINS[rng.integers(len(SKINS))]
        self.background = self._curtain(rng)

    def _curtain(self, rng: np.random.Generator) -> Image.Image:
        x = np.arange(self.width) / self.height
        folds = 0.75 + 0.25 * np.sin(2 * np.pi * x * rng.uniform(7, 9) + rng.uniform(0, 6.3))
        blue = np.array([35, 55, 150], np.float32) * rng.uniform(0.85, 1.1)
        rows = np.broadcast_to((folds[:, None] * blue)[None], (self.height, self.width, 3)).copy()
        rows[int(0.9 * self.height):] = (60, 60, 66)  # floor
        return Image.fromarray(rows.clip(0, 255).astype(np.uint8))

    def _draw(self, draw: ImageDraw.ImageDraw, kind, x, y, a, b, angle, colour) -> None:
        h = self.height
        if kind == "ring":
            box = [(x - a) * h, (y - a) * h, (x + a) * h, (y + a) * h]
            draw.ellipse(box, outline=colour, width=max(1, int(b * h)))
            return
        points = _polygon(kind, x, y, a, b, angle) * h
        draw.polygon([tuple(p) for p in points], fill=colour)

    def frame(self, t_ms: int) -> Image.Image:
        image = self.background.copy()
        draw = ImageDraw.Draw(image)
        sway = 0.012 * np.sin(t_ms / 700.0) + self.rng.normal(0, 0.002)
        x, y = self.x0 + sway, self.y0
        chair = (45, 45, 50)
        self._draw(draw, "rect", x, y + 0.12, 0.30, 0.04, 0, chair)
        self._draw(draw, "rect", x, y - 0.12, 0.24, 0.34, 0, self.shirt)  # torso
        self._draw(draw, "rect", x + 0.08, y + 0.08, 0.26, 0.09, 0, self.shirt)  # thighs
        self._draw(draw, "ellipse", x, y - 0.36, 0.07, 0.085, 0, self.skin)  # head
        colour, parts = LOOKS[self.instrument]
        tilt = 2.0 * np.sin(t_ms / 450.0)
        c, s = np.cos(np.radians(tilt)), np.sin(np.radians(tilt))
        for kind, px, py, a, b, angle in parts:
            px, py, a, b = (INSTRUMENT_SCALE * v for v in (px, py, a, b))
            rx, ry = c * px - s * py, s * px + c * py
            self._draw(draw, kind, x + rx, y + ry, a, b, angle + tilt, colour)
        return image


def write_performance(root: Path, split: str, instrument: str, number: int, seed: int, seconds: float,
                      width: int, height: int) -> int:
    """Write the chunks and frames of one performance; returns the number of pairs."""
    rng = np.random.default_rng([seed, INSTRUMENTS.index(instrument), number])
    track = synthesize_audio(rng, VOICES[instrument], seconds)
    painter = FramePainter(rng, instrument, width, height)
    chunk_dir = root / "chunk" / split / instrument
    img_dir = root / "img" / split / instrument
    chunk_dir.mkdir(parents=True, exist_ok=True)
    img_dir.mkdir(parents=True, exist_ok=True)
    hop = SAMPLE_RATE * HOP_MS // 1000  # chunk boundaries lie on the 100 ms grid (4,410 samples)
    chunk = SAMPLE_RATE * CHUNK_MS // 1000
    count = 0
    for t_ms in range(CHUNK_MS, int(round(seconds * 1000)) + 1, HOP_MS):
        end = t_ms // HOP_MS * hop
        mono = track[end - chunk:end]
        stem = Stem(instrument, number, t_ms).name
        sf.write(chunk_dir / f"{stem}.wav", np.stack([mono, mono], 1), SAMPLE_RATE, subtype="PCM_16")
        painter.frame(t_ms).save(img_dir / f"{stem}.jpg", quality=90)
        count += 1
    return count


def synthesize(out: str | Path, seed: int = 0, train_performances: int = 3, validation_performances: int = 1,
               performance_seconds: float = 16.0, frame_width: int = 480, frame_height: int = 270) -> Path:
    """Write `<out>/Sub-URMP/{chunk,img}/{train,validation}/<instrument>/...`; returns the Sub-URMP root.

    The tree is rebuilt from scratch in a temporary folder and renamed into place, so an interrupted run
    leaves no partial dataset.
    """
    if train_performances < 1 or validation_performances < 1:
        raise ValueError("synthesize.train_performances and validation_performances must be >= 1")
    if performance_seconds * 10 != int(performance_seconds * 10) or performance_seconds < 2 * EDGE_SECONDS + 1:
        raise ValueError(f"synthesize.performance_seconds must be a multiple of 0.1 s >= "
                         f"{2 * EDGE_SECONDS + 1}, got {performance_seconds}")
    if frame_width < frame_height:
        raise ValueError(f"synthesize.frame_width ({frame_width}) must be >= frame_height ({frame_height})")
    out = Path(out)
    final = out / "Sub-URMP"
    tmp = out / ".Sub-URMP.tmp"
    _remove_tree(tmp)
    jobs = [(split, instrument, number) for split, numbers in
            performance_ids(train_performances, validation_performances).items()
            for instrument in INSTRUMENTS for number in numbers]
    pairs = 0
    try:
        for split, instrument, number in tqdm(jobs, desc="synthesize", unit="performance"):
            pairs += write_performance(tmp, split, instrument, number, seed, performance_seconds,
                                       frame_width, frame_height)
        _remove_tree(final)
        tmp.rename(final)
    finally:
        _remove_tree(tmp)
    log.info("wrote %d synthetic chunk/frame pairs (%d performances) to %s", pairs, len(jobs), final)
    return final


def _remove_tree(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)
