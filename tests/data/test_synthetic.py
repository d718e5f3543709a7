import ast
import hashlib
import inspect

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from a2i.data import exact, scene, soundfont, synthetic
from a2i.data.layout import INSTRUMENTS, parse_stem
from a2i.data.scene import Motion, Painter, draw_player
from a2i.data.synthetic import VOICES, Note, Style, compose, motion_at, synthesize, synthesize_audio, write_performance

from .helpers import FIXTURES


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    return synthesize(out, seed=3, train_performances=1, validation_performances=1, performance_seconds=2.6,
                      frame_width=128, frame_height=72)


def test_real_layout_and_names(tree):
    assert tree.name == "Sub-URMP"
    for kind, suffix in (("chunk", ".wav"), ("img", ".jpg")):
        for split, numbers in (("train", {0}), ("validation", {1})):
            assert sorted(p.name for p in (tree / kind / split).iterdir()) == sorted(INSTRUMENTS)
            files = list((tree / kind / split / "double_bass").iterdir())
            assert len(files) == 22 * len(numbers)  # t = 500..2600 step 100 per performance
            stems = [parse_stem(f.stem) for f in files if f.suffix == suffix]
            assert {s.performance for s in stems} == numbers
            assert {s.t_ms for s in stems} == set(range(500, 2601, 100))


def test_chunks_have_the_real_format_and_tile_one_signal(tree):
    folder = tree / "chunk" / "train" / "violin"
    info = sf.info(folder / "violin00_1000.wav")
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 2, 22050, "PCM_16")
    assert (folder / "violin00_1000.wav").stat().st_size == 88_244
    chunks = {t: sf.read(folder / f"violin00_{t}.wav", dtype="int16")[0] for t in range(500, 2601, 100)}
    assert all(np.array_equal(c[:, 0], c[:, 1]) for c in chunks.values())
    for t in range(600, 2601, 100):  # [t-500, t) and [t-600, t-100) agree on their 400 ms overlap
        assert np.array_equal(chunks[t][:4 * 4410, 0], chunks[t - 100][4410:, 0])
    assert np.abs(chunks[500]).max() < 450 and np.abs(chunks[2600]).max() < 450  # noise floor at the edges
    assert max(np.abs(c).max() for c in chunks.values()) > 8000


def _low_share(x: np.ndarray, below_hz: float = 100.0) -> float:
    """The share of a signal's power (its mean removed) below `below_hz`."""
    power = np.abs(np.fft.rfft(x - x.mean())) ** 2
    return float(power[np.fft.rfftfreq(len(x), 1 / 44100) < below_hz].sum() / power.sum())


def test_the_room_noise_is_shaped_like_the_real_chunks_noise_floor():
    real = [sf.read(path, dtype="int16")[0][:, 0].astype(float) for path in sorted(FIXTURES.rglob("*.wav"))]
    noise = synthetic.room_noise(np.random.default_rng(0), 20 * 22050).astype(float)
    chunks = noise.reshape(20, 22050)  # 0.5 s, as the real ones
    assert len(real) == 2 and min(_low_share(x) for x in real) > 0.95  # the real floor: a rumble below 100 Hz
    assert min(_low_share(x) for x in chunks) > 0.95
    assert 30 < noise.std() < 60 and all(35 < x.std() < 55 for x in real)
    assert np.abs(noise).max() < 450  # below prepare's silence threshold: a rest stays silent


def test_frames_are_16_9_jpegs_that_move_a_little(tree):
    folder = tree / "img" / "validation" / "horn"
    a, b = Image.open(folder / "horn01_1000.jpg"), Image.open(folder / "horn01_2000.jpg")
    assert a.format == "JPEG" and a.size == (128, 72)
    diff = np.abs(np.asarray(a, float) - np.asarray(b, float)).mean()
    assert 0 < diff < 20


def test_deterministic(tmp_path):
    for name in ("a", "b"):
        write_performance(tmp_path / name, "train", "oboe", 0, seed=5, seconds=2.0, width=64, height=36)
    for kind, suffix in (("chunk", "wav"), ("img", "jpg")):
        path = f"{kind}/train/oboe/oboe00_1500.{suffix}"
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()


def _digest(tree, kind: str) -> str:
    sha = hashlib.sha256()
    for path in sorted((tree / kind).rglob("*.*")):
        sha.update(path.relative_to(tree).as_posix().encode() + path.read_bytes())
    return sha.hexdigest()


def test_audio_and_frame_bytes_are_pinned(tree):
    # The same on every CPU (the synthesizer uses only exactly rounded arithmetic): a change here means the
    # signal model, the scene (or the SoundFont) changed, and with it every downstream hash of the pipeline. The
    # frames also depend on Pillow's polygon rasteriser and bundled JPEG encoder: the same bytes from Pillow 11.2
    # on (10.x rasterises polygon edges differently, 11.1 encodes differently), pyproject's floor.
    assert _digest(tree, "chunk") == "1dc8d209e8527d5c47b2c77caaaeb273c60385d492b1520b2fdcbb7094f29890"
    assert _digest(tree, "img") == "7514532c389fec8b3f33cec8d66d7b8d820eaf0a4b447dd763d091fe78dda39e"


# numpy functions whose results are the same on every CPU: exact elementwise arithmetic, integer draws, layout
EXACT_NUMPY = {"abs", "arange", "array", "asarray", "broadcast_to", "clip", "concatenate", "cumsum", "dtype",
               "flatnonzero", "float64", "frombuffer", "full", "full_like", "int16", "int64", "minimum", "ndarray",
               "ones", "random", "rint", "stack", "uint8", "uint32", "void", "where", "zeros"}


@pytest.mark.parametrize("module", [synthetic, scene, exact, soundfont])
def test_the_dataset_uses_no_cpu_dependent_maths(module):
    """No vectorised transcendental, FFT, BLAS, float reduction or normal draw: their last bits differ per CPU."""
    source = inspect.getsource(module)
    tree = ast.parse(source)
    attributes = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)]

    def used(name: str) -> set[str]:
        return {n.attr for n in attributes if isinstance(n.value, ast.Name) and n.value.id == name}

    assert used("np") <= EXACT_NUMPY, used("np") - EXACT_NUMPY
    assert used("math") <= {"factorial", "fsum", "pi", "sqrt"}, used("math")  # sqrt is IEEE-exact
    forbidden = {"std", "mean", "var", "sum", "dot", "normal", "standard_normal", "exponential", "resize", "filter"}
    assert not {n.attr for n in attributes} & forbidden
    assert not any(isinstance(n, ast.MatMult) for n in ast.walk(tree))
    powers = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow)]
    assert not powers, "float ** calls libm pow"
    assert "scipy" not in source


def test_a_performance_number_has_one_player_whatever_the_instrument(tree):
    # players are drawn by performance number, so appearance carries no instrument; the stage's right edge (foam,
    # stand) is the player's too
    edge = [np.asarray(Image.open(tree / "img" / "train" / name / f"{name}00_1500.jpg"), float)[:, -20:]
            for name in ("horn", "cello")]
    assert np.abs(edge[0] - edge[1]).mean() < 6


def test_every_performance_has_its_own_player(tree):
    players = {draw_player(np.random.default_rng(seed), 480, 270) for seed in range(12)}
    assert len(players) == 12 and len({p.shirt for p in players}) >= 5 and len({p.skin for p in players}) >= 4
    # two performances of one instrument: different players and stage; two frames of one: the same
    a, b = (np.asarray(Image.open(tree / "img" / split / "cello" / f"cello0{n}_1500.jpg"), float)
            for split, n in (("train", 0), ("validation", 1)))
    later = np.asarray(Image.open(tree / "img" / "train" / "cello" / "cello00_2000.jpg"), float)
    assert np.abs(a - b).mean() > 3 * np.abs(a - later).mean()


def test_the_bow_moves_with_the_notes():
    voice = VOICES["violin"]
    notes = [Note(1.0, 0.5, 60, 0.8), Note(1.5, 0.5, 70, 0.8)]
    first, middle, second = (motion_at(notes, voice, t) for t in (1.0, 1.25, 1.5))
    assert (first.stroke, middle.stroke, second.stroke) == (1.0, 0.0, -1.0)  # one stroke per note, alternating
    assert motion_at(notes, voice, 0.5).loudness == 0.0  # silence before the first note
    def painter() -> Painter:  # the same player, stage and frame noise each time
        return Painter(np.random.default_rng(1), np.random.default_rng(0), "violin", 128, 72)

    still = [np.asarray(painter().frame(m), float) for m in (first, second)]
    assert np.abs(still[0] - still[1]).mean() > 0.2
    assert painter().frame(first).size == (128, 72)


def test_the_trombone_slide_reaches_further_out_for_lower_notes():
    def slide_reach(pitch: float) -> int:
        """The rightmost column of brass in the frame's lower half: the slide's end."""
        painter = Painter(np.random.default_rng(1), np.random.default_rng(0), "trombone", 480, 270)
        frame = np.asarray(painter.frame(Motion(0.0, pitch, 1.0))).astype(int)
        brass = (frame[..., 0] > 150) & (frame[..., 1] > 110) & (frame[..., 2] < 120)
        return int(np.flatnonzero(brass[135:].any(axis=0)).max())

    assert slide_reach(0.0) > slide_reach(1.0)  # the lowest note: the slide out at its seventh position


def _pitch(audio: np.ndarray) -> float:
    """Lowest strong spectral peak (Hz) of the loud part of a signal."""
    spectrum = np.abs(np.fft.rfft(audio.astype(float) * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / 44100)
    strong = np.flatnonzero(spectrum > 0.3 * spectrum.max())
    return freqs[strong[0]]


STYLE = Style(beat=0.4, legato=1.0, loudness=0.8, vibrato=1.0, gain=0.6)


@pytest.mark.parametrize("instrument", ["tuba", "double_bass", "violin", "flute"])
def test_notes_sound_at_their_pitch(instrument):
    voice = VOICES[instrument]
    for pitch in (voice.low + 3, voice.high - 3):
        audio = synthesize_audio(np.random.default_rng(0), instrument, STYLE, 3.0, [Note(1.0, 1.0, pitch, 1.0)])
        expected = 440 * 2 ** ((pitch - 69) / 12)
        found = _pitch(audio[int(1.2 * 44100):int(1.9 * 44100)])
        ratio = found / expected  # the fundamental, or an octave below/above where the recording is so
        assert min(abs(ratio - r) for r in (0.5, 1, 2)) < 0.06, (instrument, pitch, found, expected)


def test_phrases_span_the_range_with_rests():
    voice = VOICES["clarinet"]
    notes = compose(np.random.default_rng(1), voice, STYLE, 30.0)
    pitches = [n.pitch for n in notes]
    assert min(pitches) < voice.low + 8 and max(pitches) > voice.high - 8
    gaps = [b.onset - (a.onset + a.duration) for a, b in zip(notes, notes[1:])]
    assert max(gaps) >= 0.7  # rests long enough for silent chunks
    assert notes[0].onset >= 0.8 and notes[-1].onset + notes[-1].duration <= 29.2  # noise-only edges


@pytest.mark.parametrize("kwargs, message", [
    ({"performance_seconds": 1.05}, "synthesize.performance_seconds=1.05 is not a multiple of 0.1 s in 2.6..3600"),
    ({"performance_seconds": 1e308}, "synthesize.performance_seconds=1e+308 is not a multiple of 0.1 s in 2.6..3600"),
    ({"performance_seconds": float("nan")}, "synthesize.performance_seconds=nan is not a multiple of 0.1 s"),
    ({"validation_performances": 0}, "synthesize.validation_performances=0 is not an integer in 1..99"),
    ({"train_performances": 99, "validation_performances": 2}, "synthesize.train_performances=99 and "
     "synthesize.validation_performances=2 number more than 100 performances, and Sub-URMP numbers them with two "
     "digits"),
    ({"seed": -1}, "synthesize.seed=-1 is not an integer in 0..4294967295"),
    ({"frame_width": 70000}, "synthesize.frame_width=70000 is not an integer in 1..7680"),
    ({"frame_width": 10, "frame_height": 20}, "synthesize.frame_width=10 is not >= synthesize.frame_height=20"),
])
def test_bad_parameters_are_named_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as error:
        synthesize(tmp_path, **kwargs)
    assert str(error.value).startswith(message)
    assert not any(tmp_path.iterdir())
