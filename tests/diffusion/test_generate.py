import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
import yaml
from click.testing import CliRunner
from PIL import Image

from a2i.audioclip.finetune import heads_state
from a2i.audioclip.model import AudioCLIP
from a2i.cli import main
from a2i.diffusion.checkpoint import DIGEST, save_checkpoint
from a2i.diffusion.generate import Upscaling, read_clip, warn_if_silent
from a2i.diffusion.train import train
from a2i.io import save_torch

from .helpers import REPO, make_root, train_params, truncate


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 1-epoch tiny model and a tiny (random) fine-tuned audio head, as the pipeline leaves them."""
    torch.set_num_threads(1)
    root = make_root(tmp_path_factory.mktemp("generate"))
    train("text-1s", train_params(epochs=1), root)
    torch.manual_seed(0)
    save_torch(root / "models" / "audioclip" / "text-1s.pt",
               heads_state(AudioCLIP("tiny"), "text", 1, pretrained=False))
    return root


@pytest.fixture(autouse=True)
def outside_a_checkout(tmp_path, monkeypatch):
    """No params.yaml in the working directory unless a test writes one: the upscaling defaults are conf's."""
    monkeypatch.chdir(tmp_path)


def write_wav(path: Path, seconds: float, rate: int, channels: int) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, np.stack([tone] * channels, axis=1), rate)
    return path


def run(root: Path, *args: str):
    return CliRunner().invoke(main, ["generate", "--model", str(root / "models" / "diffusion" / "text-1s"),
                                     "--audio-model", str(root / "models" / "audioclip" / "text-1s.pt"),
                                     "--steps", "2", "--device", "cpu", *args])


def test_the_audio_heads_are_found_beside_the_model_from_any_folder(trained, tmp_path, monkeypatch):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    monkeypatch.chdir(tmp_path)  # not the checkout
    result = CliRunner().invoke(main, ["generate", "--model", str(trained / "models" / "diffusion" / "text-1s"),
                                       "--audio", str(wav), "--steps", "2", "--n", "2", "-o", "out.png"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.png").is_file()


def test_generate_writes_a_grid_for_a_stereo_clip_at_another_rate(trained, tmp_path):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.5, rate=22050, channels=2)
    out = tmp_path / "out.png"
    result = run(trained, "--audio", str(wav), "--n", "3", "-o", str(out))
    assert result.exit_code == 0, result.output
    image = np.asarray(Image.open(out))
    assert image.shape == (64, 3 * 64, 3)
    assert len({image[:, i * 64:(i + 1) * 64].tobytes() for i in range(3)}) == 3  # distinct draws


def test_read_clip_mixes_to_mono_resamples_and_scales_to_int16_range(tmp_path):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.2, rate=16000, channels=2)
    clip = read_clip(wav, seconds=1.0)
    assert clip.shape == (1, 1, 44100)
    assert 0.25 * 32768 < float(clip.abs().max()) < 0.35 * 32768


def test_too_short_and_unreadable_audio_are_one_line_errors(trained, tmp_path):
    short = write_wav(tmp_path / "short.wav", seconds=0.4, rate=44100, channels=1)
    result = run(trained, "--audio", str(short), "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    assert "short.wav: 0.40 s of audio, at least 1 s needed" in result.output
    bogus = tmp_path / "bogus.wav"
    bogus.write_text("not audio")
    result = run(trained, "--audio", str(bogus), "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1 and "bogus.wav: unreadable audio" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_heads_of_another_size_or_cell_and_checkpoints_of_another_size_are_refused(trained, tmp_path):
    heads = torch.load(trained / "models" / "audioclip" / "text-1s.pt", weights_only=True)
    other = tmp_path / "thesis-heads.pt"
    save_torch(other, {**heads, "size": "thesis"})
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    result = CliRunner().invoke(main, ["generate", "--model", str(trained / "models" / "diffusion" / "text-1s"),
                                       "--audio", str(wav), "--audio-model", str(other), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "an audio head of size 'thesis'" in result.output

    save_torch(other, {**heads, "alignment": "mutual"})  # a head of another cell: other embeddings
    result = CliRunner().invoke(main, ["generate", "--model", str(trained / "models" / "diffusion" / "text-1s"),
                                       "--audio", str(wav), "--audio-model", str(other), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "the audio head of mutual-1s, but" in result.output
    assert "was trained on the text-1s embeddings" in result.output and not (tmp_path / "x.png").exists()

    state = torch.load(trained / "models" / "diffusion" / "text-1s" / "epoch_001.pt", weights_only=True)
    del state[DIGEST]
    state["config"]["model"]["size"] = "thesis"
    mislabeled = tmp_path / "epoch_001.pt"
    save_checkpoint(mislabeled, state)  # saved so, not damaged
    result = CliRunner().invoke(main, ["generate", "--model", str(mislabeled), "--audio", str(wav),
                                       "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "do not fit the 'thesis' U-Net size" in result.output


def test_generate_help_shows_defaults():
    result = CliRunner().invoke(main, ["generate", "--help"])
    assert result.exit_code == 0
    assert "[default: 4; 1<=x<=4096]" in result.output and "[default: dpmpp]" in result.output


@pytest.mark.parametrize("option, value", [
    ("--seconds", "-1"), ("--seconds", "0"), ("--seconds", "0.3"), ("--seconds", "nan"), ("--seed", "-1"),
    ("--seed", str(2**64)), ("--guidance", "nan"), ("--guidance", "inf"),
    ("--guidance", "-1"), ("--n", "0"), ("--n", "4097"), ("--steps", "0"), ("--device", "gpu"), ("--device", "cuda"),
])
def test_bad_options_are_one_line_before_anything_loads(tmp_path, monkeypatch, option, value):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine
    out = tmp_path / "x.png"
    result = CliRunner().invoke(main, ["generate", "--model", str(tmp_path / "absent"), "--audio",
                                       str(tmp_path / "absent.wav"), "-o", str(out), option, value])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith(f"error: Invalid value for '{option}'")
    if value == "cuda":
        assert "CUDA is not available on this machine" in result.output
    assert not out.exists()


def test_nan_samples_are_a_one_line_error(trained, tmp_path):
    wav = write_wav(tmp_path / "nan.wav", seconds=1.0, rate=44100, channels=1)
    audio, rate = sf.read(wav, dtype="float32")
    audio[100:103] = np.nan
    sf.write(wav, audio, rate, subtype="FLOAT")
    out = tmp_path / "x.png"
    result = run(trained, "--audio", str(wav), "-o", str(out))
    assert result.exit_code == 1
    assert result.output == f"error: {wav}: 3 NaN or infinite samples; not usable audio\n"
    assert not out.exists()


def test_read_clip_refuses_a_length_below_the_audio_heads_shortest_input(tmp_path):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    for seconds in (0.0, -1.0, 1e-5, 0.49, float("nan")):
        with pytest.raises(ValueError, match=r"^seconds must be >= 0.5, the audio head's shortest input, got "):
            read_clip(wav, seconds)


@pytest.mark.parametrize("rate", [44100, 22050])
def test_an_empty_file_is_a_one_line_error_at_any_rate(tmp_path, rate):
    wav = tmp_path / "empty.wav"
    sf.write(wav, np.zeros((0, 2), np.int16), rate, subtype="PCM_16")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(wav))}: 0.00 s of audio, at least 1 s needed$"):
        read_clip(wav, 1.0)


def test_audio_beyond_the_int16_range_is_clipped_as_prepare_clips_it(tmp_path, caplog):
    # a full-scale square wave overshoots after resampling (Gibbs), and a float WAV can exceed full scale
    square = np.where(np.arange(48000) // 50 % 2, 32767, -32768).astype(np.int16)
    sf.write(tmp_path / "square.wav", square, 48000, subtype="PCM_16")
    loud = tmp_path / "loud.wav"
    sf.write(loud, np.full(44100, 1.5, np.float32), 44100, subtype="FLOAT")
    for path in (tmp_path / "square.wav", loud):
        clip = read_clip(path, 1.0)
        assert clip.min() >= -32768 and clip.max() <= 32767 and torch.equal(clip, clip.round()), path
    assert f"{loud}: float samples beyond full scale (peak 1.50), clipped to the int16 range" in caplog.text


def test_a_long_file_gives_the_clip_of_reading_it_whole(tmp_path):
    wav = write_wav(tmp_path / "long.wav", seconds=30.0, rate=48000, channels=2)
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    whole = torchaudio.functional.resample(torch.from_numpy(audio.mean(axis=1)), rate, 44100)[:44100]
    torch.testing.assert_close(read_clip(wav, 1.0).flatten(), (whole * 32768).round().clamp(-32768, 32767),
                               rtol=0, atol=0)


def test_a_clip_quieter_than_the_silence_threshold_is_drawn_with_a_warning(caplog):
    quiet = torch.full((1, 1, 100), 449.0)
    warn_if_silent(quiet, "quiet.wav")
    assert caplog.messages == ["quiet.wav: peak 449 (int16) is below 450, under which prepare drops samples as "
                               "silent (prepare.silence_peak): the model has not learnt what to draw for it"]
    caplog.clear()
    warn_if_silent(-quiet - 1.0, "loud.wav")  # the peak is |amplitude|
    assert caplog.messages == []


def _superres(path: Path, low_size: int, stats: dict | None = None, **config) -> Path:
    from a2i.diffusion.checkpoint import save_checkpoint
    from a2i.diffusion.superres import SuperResUNet, superres_state

    torch.manual_seed(0)
    model = SuperResUNet("tiny", low_size=low_size, high_size=2 * low_size, audio=True, **config)
    save_checkpoint(path, superres_state(model, stats or {}))
    return path


def test_upscale_also_writes_the_upsampled_grid(trained, tmp_path):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    out = tmp_path / "out.png"
    result = run(trained, "--audio", str(wav), "--n", "2", "--upscale", str(_superres(tmp_path / "sr.pt", 64)),
                 "-o", str(out))
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(out)).shape == (64, 2 * 64, 3)
    assert np.asarray(Image.open(tmp_path / "out_hr.png")).shape == (128, 2 * 128, 3)


def test_upscale_of_another_size_is_refused(trained, tmp_path):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    result = run(trained, "--audio", str(wav), "--upscale", str(_superres(tmp_path / "sr.pt", 32)),
                 "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 1 and "upsamples 32x32 images" in result.output
    assert not (tmp_path / "out.png").exists()


def test_upscale_at_an_augmentation_level_the_model_never_saw_is_refused(trained, tmp_path):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    superres = _superres(tmp_path / "sr.pt", 64)  # aug_max 1: trained on level 0 only
    result = run(trained, "--audio", str(wav), "--upscale", str(superres), "--aug-level", "1",
                 "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 1
    assert result.output.endswith(f"error: --aug-level must be in [0, 1) (the augmentation levels {superres} was "
                                  f"trained on: train_sr.aug_max), got 1\n")
    assert not (tmp_path / "out.png").exists()


@pytest.fixture
def sampled(monkeypatch) -> list[dict]:
    """The keyword arguments of every base-model sampling `generate` starts."""
    import a2i.diffusion.generate as module

    calls, real = [], module.generate_images
    monkeypatch.setattr(module, "generate_images", lambda *a, **k: calls.append(k) or real(*a, **k))
    return calls


def test_a_model_trained_without_condition_dropout_samples_at_guidance_1_and_refuses_another(trained, tmp_path,
                                                                                           sampled):
    root = make_root(tmp_path / "nocfg")
    train("text-1s-nocfg", train_params(epochs=1), root)
    model = root / "models" / "diffusion" / "text-1s-nocfg"
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    args = ["generate", "--model", str(model), "--audio", str(wav), "--steps", "2", "--device", "cpu", "--n", "1",
            "--audio-model", str(trained / "models" / "audioclip" / "text-1s.pt"), "-o", str(tmp_path / "x.png")]
    result = CliRunner().invoke(main, [*args, "--guidance", "3"])
    assert result.exit_code == 1
    assert result.output == ("error: --guidance 3 needs a model trained with condition dropout; "
                             f"{model / 'epoch_001.pt'} was trained with p_uncond 0: use --guidance 1\n")
    assert sampled == [] and not (tmp_path / "x.png").exists()
    result = CliRunner().invoke(main, args)  # no --guidance: the model's only one
    assert result.exit_code == 0, result.output
    assert [call["guidance"] for call in sampled] == [1.0]


def test_upscale_by_an_audio_model_of_another_embedding_is_refused_before_sampling(trained, tmp_path, sampled):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    superres = _superres(tmp_path / "sr.pt", 64, {"params": {"embedding": "frozen-2s"}})
    result = run(trained, "--audio", str(wav), "--upscale", str(superres), "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 1
    checkpoint = trained / "models" / "diffusion" / "text-1s" / "epoch_001.pt"
    assert result.output == (f"error: {superres} was trained on frozen-2s embeddings, {checkpoint} is conditioned on "
                             "text-1s: set train_sr.embedding=text-1s\n")
    assert sampled == [] and not (tmp_path / "out.png").exists()
    matching = _superres(tmp_path / "sr.pt", 64, {"params": {"embedding": "text-1s"}})
    assert run(trained, "--audio", str(wav), "--n", "1", "--upscale", str(matching),
               "-o", str(tmp_path / "out.png")).exit_code == 0


def test_upscale_with_more_steps_than_the_truncated_model_takes_is_refused_before_sampling(trained, tmp_path,
                                                                                          sampled):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    superres = _superres(tmp_path / "sr.pt", 64, t_start=2)
    result = run(trained, "--audio", str(wav), "--upscale", str(superres), "--upscale-steps", "3",
                 "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 1
    assert result.output == (f"error: --upscale-steps must be in [2, 2] for {superres}, truncated at t_start 2 "
                             "(train_sr.t_start: it was trained on the noise levels below it; its chain's last step "
                             "is at t = 0), got 3\n")
    assert sampled == [] and not (tmp_path / "out.png").exists()
    plain = _superres(tmp_path / "plain.pt", 64)  # all T levels: at most the schedule's timesteps
    result = run(trained, "--audio", str(wav), "--upscale", str(plain), "--upscale-steps", "1001",
                 "-o", str(tmp_path / "out.png"))
    assert result.output == (f"error: --upscale-steps must be <= the 1000 timesteps of the schedule of {plain}, "
                             "got 1001\n")
    assert sampled == [] and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("sampler", ["dpmpp", "ddpm"])
def test_steps_above_the_models_timesteps_are_refused_before_sampling(trained, tmp_path, sampled, sampler):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    result = run(trained, "--audio", str(wav), "--sampler", sampler, "--steps", "1001", "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    checkpoint = trained / "models" / "diffusion" / "text-1s" / "epoch_001.pt"
    assert result.output == (f"error: --steps must be <= the 1000 timesteps of the schedule of {checkpoint} "
                             "(train.timesteps), got 1001\n")
    assert sampled == [] and not (tmp_path / "x.png").exists()


@pytest.fixture
def upscaled(monkeypatch) -> list[dict]:
    """The keyword arguments of every upsampling `generate` starts (blank images, nothing sampled)."""
    import a2i.diffusion.generate as module

    calls = []

    def record(model, low, cond, **kwargs):
        calls.append(kwargs)
        return np.zeros((len(low), model.high_size, model.high_size, 3), np.uint8)

    monkeypatch.setattr(module, "upscale_images", record)
    return calls


def test_upscale_samples_with_its_own_options_defaulting_to_the_pipelines_sample_sr(trained, tmp_path, sampled,
                                                                                    upscaled):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    superres = _superres(tmp_path / "sr.pt", 64, t_start=6, aug_max=5)
    args = ["--audio", str(wav), "--n", "1", "--upscale", str(superres), "-o", str(tmp_path / "out.png")]
    result = run(trained, *args, "--sampler", "ddim", "--steps", "7")  # 7 > t_start: the base model's own
    assert result.exit_code == 0, result.output
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"sample_sr": {
        "guidance": 3.0, "sampler": "ddim", "steps": 3, "aug_level": 2, "batch_size": 8, "threads": None, "seed": 0}}))
    assert run(trained, *args).exit_code == 0
    result = run(trained, *args, "--upscale-sampler", "ddpm", "--upscale-steps", "4", "--aug-level", "1")
    assert result.exit_code == 0, result.output
    assert [(call["sampler"], call["steps"]) for call in sampled] == [("ddim", 7), ("dpmpp", 2), ("dpmpp", 2)]
    assert [(call["sampler"], call["steps"], call["aug_level"]) for call in upscaled] == [
        ("dpmpp", 6, 0), ("ddim", 3, 2), ("ddpm", 4, 1)]  # conf's without a params.yaml, then params.yaml's


def test_upscaling_defaults_are_conf_sample_sr_and_the_help_says_which_options_drive_which_model():
    conf = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())["sample_sr"]
    defaults = Upscaling(Path("sr.pt"))
    assert (defaults.sampler, defaults.steps, defaults.aug_level) == (conf["sampler"], conf["steps"],
                                                                     conf["aug_level"])
    help_text = " ".join(CliRunner().invoke(main, ["generate", "--help"]).output.split())
    assert "sampled with --upscale-sampler, --upscale-steps and --aug-level (not --sampler, --steps" in help_text
    assert f"[default: sample_sr.sampler of params.yaml; without one {conf['sampler']}]" in help_text
    assert f"[default: sample_sr.steps of params.yaml; without one {conf['steps']}]" in help_text
    assert f"[default: sample_sr.aug_level of params.yaml; without one {conf['aug_level']}]" in help_text


@pytest.mark.parametrize("where, why", [
    ("folder", "{out} is a directory"),
    ("missing/x.png", "folder {tmp}/missing does not exist"),
    ("clip.wav/x.png", "folder {tmp}/clip.wav does not exist"),
    ("grid.jpg", "{out} is not a .png file"),
])
def test_an_output_that_cannot_be_written_is_refused_before_anything_loads(tmp_path, where, why):
    write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    (tmp_path / "folder").mkdir()
    out = tmp_path / where
    result = CliRunner().invoke(main, ["generate", "--model", str(tmp_path / "absent"), "--audio",
                                       str(tmp_path / "clip.wav"), "-o", str(out)])
    assert result.exit_code == 2
    assert result.output == f"error: Invalid value for '-o' / '--output': {why.format(out=out, tmp=tmp_path)}\n"


def test_an_upsampled_grid_that_cannot_be_written_is_refused_before_sampling(trained, tmp_path, sampled):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    (tmp_path / "out_hr.png").mkdir()
    result = run(trained, "--audio", str(wav), "--upscale", str(_superres(tmp_path / "sr.pt", 64)),
                 "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 2
    assert result.output == (f"error: Invalid value for '-o' / '--output' (with --upscale): {tmp_path / 'out_hr.png'} "
                             "is a directory\n")
    assert sampled == [] and not (tmp_path / "out.png").exists()


def test_a_missing_or_foreign_checkpoint_says_so_and_a_damaged_one_how_to_restore_it(trained, tmp_path, sampled):
    wav = write_wav(tmp_path / "clip.wav", seconds=1.0, rate=44100, channels=1)
    save_torch(tmp_path / "heads.pt", {"size": "tiny"})  # a torch file of another kind
    truncate(_superres(tmp_path / "truncated.pt", 64))
    cases = {
        ("--upscale", tmp_path / "absent.pt"): "no such file, not a checkpoint",
        ("--upscale", tmp_path): "a directory, not a checkpoint",
        ("--upscale", wav): "not a checkpoint (not a torch.save archive)",
        ("--model", wav): "not a checkpoint (not a torch.save archive)",
        ("--upscale", tmp_path / "heads.pt"): "not a diffusion training checkpoint of a2i (no config and weights)",
        ("--upscale", tmp_path / "truncated.pt"): f"unreadable (truncated or damaged); run `dvc checkout {tmp_path}` "
                                                  "or delete it and re-run `dvc repro`",
    }
    for (option, path), why in cases.items():
        result = run(trained, "--audio", str(wav), option, str(path), "-o", str(tmp_path / "x.png"))
        assert result.exit_code == 1
        assert result.output == f"error: {path}: {why}\n"
    assert sampled == [] and not (tmp_path / "x.png").exists()
