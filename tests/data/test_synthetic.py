import ast
import dataclasses
import hashlib
import inspect

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from a2i.data import synthetic
from a2i.data.layout import INSTRUMENTS, parse_stem
from a2i.data.synthetic import LOOKS, VOICES, synthesize, synthesize_audio, write_performance


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


def _wav_digest(tree) -> str:
    sha = hashlib.sha256()
    for path in sorted((tree / "chunk").rglob("*.wav")):
        sha.update(path.relative_to(tree).as_posix().encode() + path.read_bytes())
    return sha.hexdigest()


def test_audio_bytes_are_pinned(tree):
    # The same on every CPU (the synthesizer uses only exactly rounded arithmetic): a change here means the
    # signal model changed, and with it every downstream hash of the pipeline.
    assert _wav_digest(tree) == "1379e4cf17a4a4eb6ce04df754233248b335b8a9d34ebff5d6116c34b39a593c"


# numpy functions whose results are the same on every CPU: exact elementwise arithmetic, integer draws, layout
EXACT_NUMPY = {"abs", "arange", "array", "asarray", "broadcast_to", "clip", "concatenate", "cumsum", "float32",
               "full_like", "int16", "int64", "ndarray", "random", "rint", "stack", "uint8", "uint32", "where", "zeros"}


def test_synthesizer_uses_no_cpu_dependent_maths():
    """No vectorised transcendental, FFT, BLAS, float reduction or normal draw: their last bits differ per CPU."""
    source = inspect.getsource(synthetic)
    tree = ast.parse(source)
    attributes = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)]

    def used(module: str) -> set[str]:
        return {n.attr for n in attributes if isinstance(n.value, ast.Name) and n.value.id == module}

    assert used("np") <= EXACT_NUMPY, used("np") - EXACT_NUMPY
    assert used("math") <= {"factorial", "fsum", "pi", "sqrt"}, used("math")  # sqrt is IEEE-exact
    forbidden = {"std", "mean", "var", "sum", "dot", "normal", "standard_normal", "exponential"}
    assert not {n.attr for n in attributes} & forbidden
    assert not any(isinstance(n, ast.MatMult) for n in ast.walk(tree))
    powers = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow)]
    assert not powers, "float ** calls libm pow"
    assert "scipy" not in source


def _centre_crop(path, size=32) -> np.ndarray:
    image = Image.open(path)
    w, h = image.size
    return np.asarray(image.crop(((w - h) // 2, 0, (w + h) // 2, h)).resize((size, size), Image.LANCZOS), float)


def test_class_colour_dominates_the_centre_crop(tree):
    colours = np.array([LOOKS[name][0] for name in INSTRUMENTS], float)
    for label, instrument in enumerate(INSTRUMENTS):
        for path in sorted((tree / "img").glob(f"*/{instrument}/*.jpg"))[::4]:
            pixels = _centre_crop(path).reshape(-1, 1, 3)
            share = (np.abs(pixels - colours[None]).max(-1) < 40).mean(0)  # pixel share near each class colour
            assert share.argmax() == label and share[label] > 0.04, (path.name, share.round(3))


def _pitch(audio: np.ndarray) -> float:
    """Lowest strong spectral peak (Hz) of the loud part of a signal."""
    spectrum = np.abs(np.fft.rfft(audio.astype(float) * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / 44100)
    strong = np.flatnonzero(spectrum > 0.3 * spectrum.max())
    return freqs[strong[0]]


@pytest.mark.parametrize("instrument", ["tuba", "double_bass", "violin", "flute"])
def test_pitch_ranges_follow_the_instrument(instrument):
    audio = synthesize_audio(np.random.default_rng(0), VOICES[instrument], 6.0)
    voice = VOICES[instrument]
    low, high = (440 * 2 ** ((m - 69) / 12) for m in (voice.low, voice.high))
    pitch = _pitch(audio[44100:5 * 44100])
    assert 0.9 * low <= pitch <= 1.1 * high * 2  # the fundamental may be weaker than the 2nd harmonic


def test_every_instrument_has_its_own_resonance_band():
    assert len({voice.resonance for voice in VOICES.values()}) == len(VOICES)
    for instrument in ("tuba", "sax", "violin"):
        voice = VOICES[instrument]
        elsewhere = dataclasses.replace(voice, resonance=voice.resonance + 3000 if voice.resonance < 10000 else 2000)

        def band_power(v) -> float:
            audio = synthesize_audio(np.random.default_rng(0), v, 6.0)[44100:5 * 44100].astype(float)
            freqs = np.fft.rfftfreq(len(audio), 1 / 44100)
            return float((np.abs(np.fft.rfft(audio)) ** 2)[np.abs(freqs - voice.resonance) < 250].sum())

        # whatever the notes, the band around the instrument's resonance holds several times more power
        assert band_power(voice) > 3 * band_power(elsewhere), instrument


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="performance_seconds"):
        synthesize(tmp_path, performance_seconds=1.05)
    with pytest.raises(ValueError, match="validation_performances"):
        synthesize(tmp_path, validation_performances=0)
    assert not (tmp_path / "Sub-URMP").exists()
