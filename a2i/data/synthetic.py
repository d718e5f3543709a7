"""The embedded synthetic Sub-URMP: a seeded stand-in with the real layout, naming and file formats.

Each performance is one continuous recording (phrases with rests, between a room-noise floor at its start and
end) written as the real 0.5 s stereo chunks on a 100 ms hop, plus one 16:9 JPEG frame per chunk
(`a2i.data.scene`: a different player per performance in front of a blue curtain, moving with the music).

The timbres are real recorded notes: each instrument plays its General MIDI program's samples from the SoundFont
that ships with `pretty_midi` (`a2i.data.soundfont`), pitch-shifted and looped here. Each performance has its
own style (tempo, legato or detached notes, dynamics, vibrato depth, microphone gain); nothing is added that a
real recording lacks, so an audio model must learn timbre and register, as on Sub-URMP.

The bytes are the same on every CPU, so the pipeline's hashes are too: playback uses fixed-point integer sample
positions, linear interpolation and envelopes from exactly rounded + - * / only (`a2i.data.exact`), and the
noise is integer.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from a2i.config import SynthesizeConfig
from a2i.data import EDGE_SECONDS
from a2i.data.exact import LN2, PHASE_BITS, exp, exp_small, phase_step, semitones, sine
from a2i.data.layout import CHUNK_MS, HOP_MS, INSTRUMENTS, SAMPLE_RATE, Stem
from a2i.data.scene import Motion, Painter
from a2i.data.soundfont import GM_PROGRAMS, SoundFont, Zone, general_midi

log = logging.getLogger(__name__)

# The room's noise floor, shaped like the real chunks' (tests/fixtures/data: std 39 and 50, nearly all of it below
# 100 Hz, about one int16 step above 1 kHz): white integers low-passed by two 10 ms moving sums in cascade (nulls
# at multiples of 100 Hz), plus a white floor of about one step.
RUMBLE_STEP = 26  # white integers in [-26, 26] before the moving sums
RUMBLE_TAPS = 441  # 10 ms at 44.1 kHz
RUMBLE_DIVISOR = 2_600  # the two moving sums' std / 2,600: a rumble of std about 45
RUMBLE_MAX = 400  # |rumble| is held below prepare's 450 silence threshold (about 9 std: it never binds in practice)
FLOOR_STEP = 2  # the white floor: integers in [-2, 2], std 1.4
FRACTION = 1 << 32  # sample positions are int64 fixed point with 32 fractional bits: cumulative sums are exact
VIBRATO_ONSET = 0.25  # s over which vibrato grows after a note starts
JPEG_QUALITY = 85
_LN10 = LN2 * 3.321928094887362  # ln 10 = ln 2 * log2 10: SF2 attenuation is in centibels


@dataclass(frozen=True)
class Voice:
    """How an instrument is played: MIDI range, envelope (s) and vibrato."""

    low: int
    high: int
    attack: float
    release: float
    vibrato_cents: float  # 0: played without vibrato
    vibrato_hz: float = 5.5


VOICES: dict[str, Voice] = {
    "violin": Voice(55, 88, 0.06, 0.15, 22.0),
    "viola": Voice(48, 81, 0.06, 0.15, 20.0),
    "cello": Voice(36, 69, 0.07, 0.20, 18.0),
    "double_bass": Voice(28, 55, 0.08, 0.25, 12.0),
    "flute": Voice(60, 93, 0.04, 0.08, 12.0, 5.0),
    "oboe": Voice(58, 88, 0.03, 0.06, 8.0, 5.0),
    "clarinet": Voice(50, 84, 0.03, 0.06, 0.0),
    "bassoon": Voice(34, 67, 0.03, 0.08, 6.0, 5.0),
    "sax": Voice(49, 80, 0.03, 0.08, 15.0, 5.0),
    "trumpet": Voice(54, 82, 0.02, 0.08, 4.0, 4.5),
    "horn": Voice(41, 74, 0.04, 0.12, 0.0),
    "trombone": Voice(40, 72, 0.03, 0.10, 0.0),
    "tuba": Voice(28, 58, 0.04, 0.12, 0.0),
}


@dataclass(frozen=True)
class Style:
    """How one performer plays: the same piece sounds different from each."""

    beat: float  # s
    legato: float  # sounding share of each note's time: 0.55 detached .. 1.0 legato
    loudness: float  # phrase velocity, 0..1
    vibrato: float  # depth relative to the instrument's
    gain: float  # peak of the recording relative to full scale (microphone gain)


@dataclass(frozen=True)
class Note:
    onset: float  # s
    duration: float  # s, sounding (the release follows)
    pitch: int  # MIDI
    velocity: float  # 0..1


def draw_style(rng: np.random.Generator) -> Style:
    return Style(beat=rng.uniform(0.3, 0.6), legato=rng.uniform(0.55, 1.0), loudness=rng.uniform(0.5, 1.0),
                 vibrato=rng.uniform(0.6, 1.4), gain=rng.uniform(0.35, 0.8))


def performance_ids(train_performances: int, validation_performances: int) -> dict[str, list[int]]:
    """Performance numbers NN per original split: train first, then validation (distinct NN, as in Sub-URMP)."""
    total = train_performances + validation_performances
    return {"train": list(range(train_performances)), "validation": list(range(train_performances, total))}


def compose(rng: np.random.Generator, voice: Voice, style: Style, seconds: float) -> list[Note]:
    """Phrases of 3-8 notes moving by steps and leaps, with a swell in each, separated by rests (some long enough
    for silent chunks), between the noise-only edges. Every phrase starts anywhere in the range, so every
    performance (test ones too) spans the instrument's register."""
    notes, t, end = [], EDGE_SECONDS, seconds - EDGE_SECONDS
    while t < end - 0.2:
        pitch = int(rng.integers(voice.low, voice.high + 1))
        length = int(rng.integers(3, 9))
        for k in range(length):
            slot = min(style.beat * float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])), end - t)
            if slot < 0.1:
                break
            swell = 0.75 + 0.5 * k / length if length > 1 else 1.0
            notes.append(Note(t, slot * style.legato, pitch, min(1.0, style.loudness * swell * rng.uniform(0.85, 1))))
            t += slot
            pitch = int(np.clip(pitch + int(rng.choice([-5, -3, -2, -1, 1, 2, 3, 4, 7])), voice.low, voice.high))
        t += float(rng.choice([0.2, 0.4, 0.7, 1.0]))
    return notes


def _read(zone: Zone, position: np.ndarray) -> np.ndarray:
    """The recorded note at fixed-point sample positions, looped and linearly interpolated (exact arithmetic)."""
    samples = zone.samples
    if zone.loop:
        loop_start, loop_end = zone.loop
        beyond = position >= loop_end * FRACTION
        looped = loop_start * FRACTION + (position - loop_start * FRACTION) % ((loop_end - loop_start) * FRACTION)
        position = np.where(beyond, looped, position)
        index = position // FRACTION
        after = np.where(index + 1 >= loop_end, loop_start, index + 1)
        sounding = np.ones(position.shape, bool)
    else:
        index = np.minimum(position // FRACTION, len(samples) - 2)
        after = index + 1
        sounding = position // FRACTION < len(samples) - 1  # an unlooped note ends with its recording
    fraction = (position % FRACTION).astype(np.float64) * (1 / FRACTION)
    a, b = samples[index].astype(np.float64), samples[after].astype(np.float64)
    return (a + fraction * (b - a)) * sounding


def render_note(font: SoundFont, instrument: str, voice: Voice, style: Style, note: Note,
                vibrato_phase: int) -> np.ndarray:
    """One note with its release: float samples at SAMPLE_RATE."""
    zone = font.zone(GM_PROGRAMS[instrument], note.pitch)
    n = int((note.duration + voice.release) * SAMPLE_RATE)
    local = np.arange(n) / SAMPLE_RATE
    ratio = semitones((note.pitch - zone.root_key) * 100 + zone.tune_cents) * zone.rate / SAMPLE_RATE
    step = np.full(n, ratio)
    if voice.vibrato_cents:
        depth = LN2 * voice.vibrato_cents * style.vibrato / 1200 * np.clip(local / VIBRATO_ONSET, 0, 1)
        phase = np.arange(n, dtype=np.uint32) * phase_step(voice.vibrato_hz, SAMPLE_RATE) + np.uint32(vibrato_phase)
        step = step * exp_small(depth * sine(phase))
    increments = np.rint(step * FRACTION).astype(np.int64)
    position = np.concatenate([np.zeros(1, np.int64), np.cumsum(increments[:-1])])
    rise = np.clip(local / voice.attack, 0, 1)
    fall = np.clip((note.duration + voice.release - local) / voice.release, 0, 1)
    decay = 1 - 0.15 * local / (note.duration + voice.release)
    level = note.velocity * exp(-zone.attenuation_cb / 200 * _LN10)
    return _read(zone, position) * (rise * fall * decay * level)


def synthesize_audio(rng: np.random.Generator, instrument: str, style: Style, seconds: float,
                     notes: list[Note]) -> np.ndarray:
    """One performance of `notes`: int16 mono [seconds * SAMPLE_RATE]."""
    voice, font = VOICES[instrument], general_midi()
    n = int(round(seconds * SAMPLE_RATE))
    signal = np.zeros(n)
    for note in notes:
        sound = render_note(font, instrument, voice, style, note, int(rng.integers(1 << PHASE_BITS)))
        start = int(note.onset * SAMPLE_RATE)
        sound = sound[:n - start]
        signal[start:start + len(sound)] += sound
    loudest = float(np.abs(signal).max())
    signal *= style.gain * 32767 / max(loudest, 1e-6)
    return np.clip(np.rint(signal) + room_noise(rng, n), -32768, 32767).astype(np.int16)


def room_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """int64 [n]: a room's noise floor (rumble below about 100 Hz and a white floor of about one step), from
    integer arithmetic only."""
    white = rng.integers(-RUMBLE_STEP, RUMBLE_STEP + 1, n + 2 * (RUMBLE_TAPS - 1))
    summed = _moving_sum(_moving_sum(white, RUMBLE_TAPS), RUMBLE_TAPS)
    rumble = np.clip((summed + RUMBLE_DIVISOR // 2) // RUMBLE_DIVISOR, -RUMBLE_MAX, RUMBLE_MAX)
    return rumble + rng.integers(-FLOOR_STEP, FLOOR_STEP + 1, n)


def _moving_sum(x: np.ndarray, taps: int) -> np.ndarray:
    """The sums of `taps` consecutive entries of integer `x` ([len(x) - taps + 1]), exact."""
    total = np.concatenate([[0], np.cumsum(x)])
    return total[taps:] - total[:-taps]


def motion_at(notes: list[Note], voice: Voice, t: float) -> Motion:
    """Bow stroke, pitch and loudness of the note sounding at time t (s): what the frame shows."""
    for k, note in enumerate(notes):
        if note.onset <= t < note.onset + note.duration:
            progress = (t - note.onset) / note.duration
            stroke = (2 * progress - 1) * (1 if k % 2 else -1)  # one bow stroke per note, alternating
            return Motion(stroke, (note.pitch - voice.low) / (voice.high - voice.low), note.velocity)
    return Motion(0.0, 0.5, 0.0)


def write_performance(root: Path, split: str, instrument: str, number: int, seed: int, seconds: float,
                      width: int, height: int) -> int:
    """Write the chunks and frames of one performance; returns the number of pairs."""
    # separate streams, so that the frames do not change with the number of draws the audio makes; the player
    # and stage depend on the performance number alone (see a2i.data.scene)
    audio_rng, frame_rng = np.random.default_rng([seed, INSTRUMENTS.index(instrument), number]).spawn(2)
    look_rng = np.random.default_rng([seed, len(INSTRUMENTS), number])
    voice, style = VOICES[instrument], draw_style(audio_rng)
    notes = compose(audio_rng, voice, style, seconds)
    track = synthesize_audio(audio_rng, instrument, style, seconds, notes)
    painter = Painter(look_rng, frame_rng, instrument, width, height)
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
        frame = painter.frame(motion_at(notes, voice, (t_ms - CHUNK_MS / 2) / 1000))  # the chunk's middle
        frame.save(img_dir / f"{stem}.jpg", quality=JPEG_QUALITY)
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
    # the stage's rules, for library callers too (ConfigError, a ValueError naming every bad argument)
    SynthesizeConfig.from_params(dict(seed=seed, train_performances=train_performances,
                                      validation_performances=validation_performances,
                                      performance_seconds=performance_seconds, frame_width=frame_width,
                                      frame_height=frame_height))
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

