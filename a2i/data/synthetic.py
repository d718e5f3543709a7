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

The bytes are the same on every CPU, so the pipeline's hashes are too: numpy's vectorised sin/exp/log and FFTs,
BLAS dot products and even libm's scalar functions pick instruction-set-specific code (SSE, AVX2, AVX-512, FMA)
whose last bits differ, and one bit can move a sample across an int16 step. So array maths uses only + - * /,
whose IEEE results are exact everywhere (sines come from a table built by such a polynomial, read by integer
phases), sums are exactly rounded (math.fsum), noise is integer, and scalar exp/log run in software decimals.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw
from tqdm import tqdm

from a2i.data import EDGE_SECONDS
from a2i.data.layout import CHUNK_MS, HOP_MS, INSTRUMENTS, SAMPLE_RATE, Stem

log = logging.getLogger(__name__)

NOISE_STEP = 26  # noise floor: the sum of 4 integers in [-26, 26], std 30.6, so |noise| <= 104 stays below the
#                  450 silence threshold of prepare
HARMONICS = 12
RESONANCE_LEVEL = 0.15  # RMS of the noise band relative to the harmonic part
RESONANCE_WIDTH = 250.0  # Hz
INSTRUMENT_SCALE = 1.2  # instruments drawn larger than life so they dominate the square crop

PHASE_BITS = 32  # phases are uint32 fractions of a cycle: integer sums are exact and wrap-around is the modulo
TABLE_BITS = 16  # sine table of 65,536 entries read at the nearest one: <= 4.8e-5 rad, as fine as float32 phases
TWO_PI = 2 * math.pi
WHITE_STEPS = 1 << 20  # integer white noise in [-2^20, 2^20]: three moving sums of it stay far inside int64
WHITE_STD = math.sqrt(WHITE_STEPS * (WHITE_STEPS + 1) / 3)
# Three moving sums of BOX samples make a near-Gaussian impulse response whose std, 1 / (2 pi RESONANCE_WIDTH) s,
# gives the noise band a Gaussian spectrum of std RESONANCE_WIDTH Hz; its variance is 3 (BOX^2 - 1) / 12.
_BOX_STD = SAMPLE_RATE / (TWO_PI * RESONANCE_WIDTH)  # samples
BOX = round(math.sqrt(4 * _BOX_STD * _BOX_STD + 1))


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


def _exp(x: float) -> float:
    """e^x of a scalar in software decimals: the same double on every CPU, unlike libm's FMA/non-FMA variants."""
    with localcontext(Context(prec=40)):
        return float(Decimal(x).exp())


def _ln(x: float) -> float:
    """ln x of a scalar in software decimals (see _exp)."""
    with localcontext(Context(prec=40)):
        return float(Decimal(x).ln())


LN2 = _ln(2.0)
# Odd Taylor coefficients (-1)^j / (2j+1)!: up to x^21 the error on [-pi/2, pi/2] is below 2e-18.
SIN_COEFFS = tuple((-1 if j % 2 else 1) / math.factorial(2 * j + 1) for j in range(11))


def _sin_turns(turns: np.ndarray | float) -> np.ndarray:
    """sin(2 pi turns) from + - * / only, each exactly rounded, so the same on every CPU, unlike np.sin."""
    r = turns - np.rint(turns)  # [-1/2, 1/2]
    r = np.where(r > 0.25, 0.5 - r, np.where(r < -0.25, -0.5 - r, r))  # sin(pi - x) = sin x: [-1/4, 1/4]
    x = TWO_PI * r
    x2 = x * x
    acc = SIN_COEFFS[-1]
    for c in SIN_COEFFS[-2::-1]:
        acc = acc * x2 + c
    return acc * x


def _cos_turns(turns: np.ndarray | float) -> np.ndarray:
    return _sin_turns(turns + 0.25)


SINE_TABLE = _sin_turns(np.arange(1 << TABLE_BITS) / (1 << TABLE_BITS))


def _sine(phase: np.ndarray) -> np.ndarray:
    """sin of uint32 phases (units of 2^-32 cycle), read from the table at the nearest entry."""
    half_step = np.uint32(1 << (PHASE_BITS - TABLE_BITS - 1))
    return SINE_TABLE[(phase + half_step) >> (PHASE_BITS - TABLE_BITS)]


def _phase_step(hz: np.ndarray | float) -> np.ndarray:
    """Per-sample uint32 phase increment of a frequency in [0, SAMPLE_RATE)."""
    return np.rint(np.asarray(hz) * ((1 << PHASE_BITS) / SAMPLE_RATE)).astype(np.uint32)


def _exp_small(x: np.ndarray) -> np.ndarray:
    """e^x for |x| < 0.05 by its Taylor series to x^7 (error < 2e-15), + and * only."""
    acc = np.full_like(x, 1 / math.factorial(7))
    for j in range(6, -1, -1):
        acc = acc * x + 1 / math.factorial(j)
    return acc


def _std(x: np.ndarray) -> float:
    """Standard deviation with exactly rounded sums (math.fsum): no order- or SIMD-dependent rounding."""
    deviation = x - math.fsum(x.tolist()) / x.size
    return math.sqrt(math.fsum((deviation * deviation).tolist()) / x.size)


def _power(exponent: float, odd_only: float = 1.0) -> tuple[float, ...]:
    """Harmonic amplitudes k^-exponent; `odd_only` < 1 weakens the even harmonics (clarinet)."""
    return tuple(_exp(-exponent * _ln(k)) * (1.0 if k % 2 else odd_only) for k in range(1, HARMONICS + 1))


def _formant(peak: int, width: float) -> tuple[float, ...]:
    """Harmonic amplitudes peaking at harmonic `peak` (nasal double reeds)."""
    return tuple(_exp(-_ln(k / peak) * _ln(k / peak) / (2 * width * width)) for k in range(1, HARMONICS + 1))


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


def _midi_hz(pitch: int) -> float:
    return 440.0 * _exp((pitch - 69) / 12 * LN2)


def synthesize_audio(rng: np.random.Generator, voice: Voice, seconds: float) -> np.ndarray:
    """One performance: int16 mono [seconds * SAMPLE_RATE]."""
    n = int(round(seconds * SAMPLE_RATE))
    f0 = np.zeros(n)
    env = np.zeros(n)
    for onset, duration, pitch in _melody(rng, voice, seconds):
        a, b = int(onset * SAMPLE_RATE), min(n, int((onset + duration) * SAMPLE_RATE))
        local = np.arange(b - a) / SAMPLE_RATE
        f0[a:b] = _midi_hz(pitch)
        rise = np.clip(local / voice.attack, 0, 1)
        fall = np.clip((duration - local) / voice.release, 0, 1)
        env[a:b] = rise * fall * rng.uniform(0.6, 1.0) * (1 - 0.15 * local / max(duration, 1e-3))
    vibrato_phase = np.arange(n, dtype=np.uint32) * _phase_step(voice.vibrato_hz) + np.uint32(rng.integers(1 << 32))
    freq = f0 * _exp_small(LN2 * voice.vibrato_cents / 1200 * _sine(vibrato_phase))  # 2^(cents/1200 sin)
    phase = np.cumsum(_phase_step(freq), dtype=np.uint32)
    signal = np.zeros(n)
    for k, amplitude in enumerate(voice.harmonics, start=1):
        if amplitude < 1e-3:
            continue
        weight = amplitude * (1 + voice.brighten * (env - 0.5) * (k - 1) / HARMONICS)
        signal += weight * _sine(phase * np.uint32(k)) * (k * freq < 0.45 * SAMPLE_RATE)
    signal += RESONANCE_LEVEL * _std(signal) * _band_noise(rng, n, voice.resonance)
    if voice.breath:
        signal += voice.breath * _moving_sum(_white(rng, n + 7), 8) / (8 * WHITE_STD)  # unit noise, 8-sample mean
    signal *= env
    signal *= rng.uniform(0.45, 0.75) * 32767 / max(float(np.abs(signal).max()), 1e-6)
    noise = sum(rng.integers(-NOISE_STEP, NOISE_STEP + 1, n) for _ in range(4))
    return np.clip(np.rint(signal) + noise, -32768, 32767).astype(np.int16)


def _white(rng: np.random.Generator, n: int) -> np.ndarray:
    """Integer white noise of std WHITE_STD: its sums are exact, and numpy's normal draws call libm on rare paths."""
    return rng.integers(-WHITE_STEPS, WHITE_STEPS + 1, n)


def _moving_sum(x: np.ndarray, width: int) -> np.ndarray:
    """Sums of `width` consecutive samples (len(x) - width + 1 of them) via a cumulative sum."""
    total = np.concatenate([np.zeros(1, x.dtype), np.cumsum(x)])
    return total[width:] - total[:-width]


def _band_noise(rng: np.random.Generator, n: int, centre_hz: float) -> np.ndarray:
    """Unit-variance noise with a near-Gaussian band (std RESONANCE_WIDTH Hz) at `centre_hz`.

    Two independent low-pass noises (integer white noise through three moving sums, exact in int64) shifted up
    by quadrature modulation; no FFT, whose SIMD kernels round differently per CPU.
    """
    carrier = np.arange(n, dtype=np.uint32) * _phase_step(centre_hz)
    in_phase, quadrature = _lowpass(_white(rng, n + 3 * (BOX - 1))), _lowpass(_white(rng, n + 3 * (BOX - 1)))
    band = in_phase * _sine(carrier + np.uint32(1 << (PHASE_BITS - 2))) - quadrature * _sine(carrier)
    return band / _LOWPASS_STD  # cos^2 + sin^2 = 1: the band has the low-pass noises' variance


def _lowpass(x: np.ndarray) -> np.ndarray:
    """Three moving sums of BOX samples (len(x) - 3 (BOX - 1) of them), exact in int64 for integer x."""
    for _ in range(3):
        x = _moving_sum(x, BOX)
    return x


_IMPULSE_RESPONSE = _lowpass((np.arange(6 * (BOX - 1) + 1) == 3 * (BOX - 1)).astype(np.int64)).tolist()
_LOWPASS_STD = WHITE_STD * math.sqrt(sum(h * h for h in _IMPULSE_RESPONSE))  # std of _lowpass(_white(...))


def _polygon(kind: str, x: float, y: float, a: float, b: float, angle: float, n: int = 28) -> np.ndarray:
    """Outline points (unit: frame height) of a rotated ellipse or rectangle centred at (x, y)."""
    if kind == "rect":
        px, py = np.array([-a / 2, a / 2, a / 2, -a / 2]), np.array([-b / 2, -b / 2, b / 2, b / 2])
    else:
        turns = np.arange(n) / n
        px, py = a * _cos_turns(turns), b * _sin_turns(turns)
    c, s = _cos_turns(angle / 360), _sin_turns(angle / 360)
    return np.stack([px * c - py * s + x, px * s + py * c + y], 1)  # rotation written out: BLAS matmul may fuse


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
        folds = 0.75 + 0.25 * _sin_turns(x * rng.uniform(7, 9) + rng.random())
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
        jitter = self.rng.uniform(-0.0035, 0.0035)  # std 0.002
        sway = 0.012 * float(_sin_turns(t_ms / 700.0 / TWO_PI)) + jitter
        x, y = self.x0 + sway, self.y0
        chair = (45, 45, 50)
        self._draw(draw, "rect", x, y + 0.12, 0.30, 0.04, 0, chair)
        self._draw(draw, "rect", x, y - 0.12, 0.24, 0.34, 0, self.shirt)  # torso
        self._draw(draw, "rect", x + 0.08, y + 0.08, 0.26, 0.09, 0, self.shirt)  # thighs
        self._draw(draw, "ellipse", x, y - 0.36, 0.07, 0.085, 0, self.skin)  # head
        colour, parts = LOOKS[self.instrument]
        tilt = 2.0 * float(_sin_turns(t_ms / 450.0 / TWO_PI))
        c, s = float(_cos_turns(tilt / 360)), float(_sin_turns(tilt / 360))
        for kind, px, py, a, b, angle in parts:
            px, py, a, b = (INSTRUMENT_SCALE * v for v in (px, py, a, b))
            rx, ry = c * px - s * py, s * px + c * py
            self._draw(draw, kind, x + rx, y + ry, a, b, angle + tilt, colour)
        return image


def write_performance(root: Path, split: str, instrument: str, number: int, seed: int, seconds: float,
                      width: int, height: int) -> int:
    """Write the chunks and frames of one performance; returns the number of pairs."""
    # separate streams, so that the frames do not change with the number of draws the audio makes
    audio_rng, frame_rng = np.random.default_rng([seed, INSTRUMENTS.index(instrument), number]).spawn(2)
    track = synthesize_audio(audio_rng, VOICES[instrument], seconds)
    painter = FramePainter(frame_rng, instrument, width, height)
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
        _write_wav(chunk_dir / f"{stem}.wav", np.stack([mono, mono], 1))
        painter.frame(t_ms).save(img_dir / f"{stem}.jpg", quality=90)
        count += 1
    return count


def _write_wav(path: Path, samples: np.ndarray) -> None:
    """16-bit WAV through memory: libsndfile fsyncs every file it closes, which took longer than the synthesis."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    path.write_bytes(buffer.getvalue())


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

