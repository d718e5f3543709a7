"""`a2i generate`: a user's WAV -> the fine-tuned AudioCLIP audio head -> images from a trained U-Net."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from a2i.audioclip import MIN_SECONDS
from a2i.data import SILENCE_PEAK
from a2i.data.layout import SAMPLE_RATE
from a2i.devices import select_device
from a2i.diffusion.checkpoint import checkpoints, load_generator
from a2i.diffusion.sampling import checkpoint_guidance, generate_images
from a2i.diffusion.superres import SuperResUNet, check_aug_level, check_embedding, check_steps, load_superres
from a2i.diffusion.superres import upscale as upscale_images
from a2i.diffusion.unet import UNet
from a2i.variants import audioclip_model

log = logging.getLogger(__name__)
GENERATE_BATCH = 64  # images per U-Net call: --n can be far more than memory holds at once


@dataclass(frozen=True)
class Upscaling:
    """The super-resolution of `generate`: its checkpoint (models/superres.pt) and how that is sampled, apart from
    the base model; the defaults are conf/config.yaml's `sample_sr`."""

    checkpoint: Path
    sampler: str = "dpmpp"
    steps: int = 6
    aug_level: int = 0


def read_clip(path: str | Path, seconds: float) -> torch.Tensor:
    """The first `seconds` of a WAV (any rate, mono or stereo) as float int16-range audio [1, 1, T] at 44.1 kHz,
    clipped to that range as prepare clips its chunks. Reads only what the clip needs, however long the file."""
    path = Path(path)
    if not seconds >= MIN_SECONDS:  # also false for nan
        raise ValueError(f"seconds must be >= {MIN_SECONDS}, the audio head's shortest input, got {seconds}")
    need = int(round(seconds * SAMPLE_RATE))
    try:
        with sf.SoundFile(path) as file:
            rate = file.samplerate
            # the resampling filter reaches a few samples past the clip: 100 ms more keeps its end exact
            audio = file.read(math.ceil(seconds * rate) + rate // 10, dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as error:  # libsndfile errors are RuntimeErrors
        raise ValueError(f"{path}: unreadable audio ({error})") from None
    if len(audio) * SAMPLE_RATE < need * rate:
        raise ValueError(f"{path}: {len(audio) / rate:.2f} s of audio, at least {seconds:g} s needed")
    bad = int(np.count_nonzero(~np.isfinite(audio)))
    if bad:  # a float WAV can hold them; they would turn every image black
        raise ValueError(f"{path}: {bad} NaN or infinite samples; not usable audio")
    peak = float(np.abs(audio).max())
    if peak > 1:
        log.warning("%s: float samples beyond full scale (peak %.2f), clipped to the int16 range", path, peak)
    mono = torch.from_numpy(audio.mean(axis=1))
    if rate != SAMPLE_RATE:
        mono = torchaudio.functional.resample(mono, rate, SAMPLE_RATE)
    return (mono[:need] * 32768.0).round().clamp(-32768, 32767).reshape(1, 1, need)


def warn_if_silent(clip: torch.Tensor, path: str | Path) -> None:
    """Log a warning for a clip quieter than any the pipeline trains on: prepare drops such samples as silence."""
    peak = float(clip.abs().max())
    if peak < SILENCE_PEAK:  # the thesis' threshold; the checkpoint does not record the one it was trained with
        log.warning("%s: peak %.0f (int16) is below %d, under which prepare drops samples as silent "
                    "(prepare.silence_peak): the model has not learnt what to draw for it", path, peak, SILENCE_PEAK)


def resolve_checkpoint(model: str | Path) -> Path:
    """A run directory (its newest checkpoint) or a checkpoint file."""
    model = Path(model)
    if model.is_dir():
        found = checkpoints(model)
        if not found:
            raise ValueError(f"{model}: no epoch_*.pt checkpoints in this directory")
        return found[-1][1]
    if not model.is_file():
        raise ValueError(f"{model}: no such model directory or checkpoint")
    return model


def load_upscaler(upscaling: Upscaling, unet: UNet, config: dict, checkpoint: Path,
                  device: torch.device) -> SuperResUNet:
    """The super-resolution model of `upscaling`, checked (before any sampling) to fit the base model `unet` (from
    `checkpoint`, its run config `config`) and to take the sampling options the command line names."""
    path = upscaling.checkpoint
    superres = load_superres(path, device)
    if superres.low_size != unet.image_size:
        raise ValueError(f"{path} upsamples {superres.low_size}x{superres.low_size} images, {checkpoint} draws "
                         f"{unet.image_size}x{unet.image_size}")
    check_aug_level(superres, upscaling.aug_level, path, name="--aug-level")
    check_steps(superres, upscaling.steps, path, name="--upscale-steps")
    if superres.audio:  # conditioned on the base model's embedding of the clip
        check_embedding(path, config["embedding"], checkpoint)
    return superres


def default_audio_model(checkpoint: Path, embedding: str) -> Path:
    """The fine-tuned heads of `embedding` in the checkout that holds `checkpoint` (so that a model is found from
    any folder), else in the current one."""
    relative = audioclip_model(embedding)
    return next((folder / relative for folder in checkpoint.absolute().parents if (folder / relative).is_file()),
                relative)


def generate(model: str | Path, audio: str | Path, *, seconds: float | None = None, n: int = 4,
             guidance: float | None = None, sampler: str = "dpmpp", steps: int = 25, seed: int = 0,
             audio_model: str | Path | None = None, device: torch.device | None = None,
             upscale: Upscaling | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(uint8 [n, S, S, 3] images (S: the U-Net's image size) for one audio clip drawn with `sampler` and `steps`,
    the same upsampled as `upscale` says (its own sampler and steps) or None).
    `audio_model` defaults to the fine-tuned head the model's embeddings came from (`default_audio_model`);
    `seconds` to the model's clip length; `guidance` to `checkpoint_guidance`'s (3, or 1 for a model trained without
    condition dropout)."""
    from a2i.audioclip.embed import audio_encoder, heads_embedding, read_heads

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    device = device or select_device()
    checkpoint = resolve_checkpoint(model)
    unet, config = load_generator(checkpoint, device)
    unet.schedule.check_steps(steps, checkpoint, "--steps", " (train.timesteps)")
    guidance = checkpoint_guidance(config, guidance, checkpoint)
    audio_model = Path(audio_model or default_audio_model(checkpoint, config["embedding"]))
    heads = read_heads(audio_model)
    if heads["size"] != config["model"]["size"]:
        raise ValueError(f"{audio_model}: an audio head of size '{heads['size']}', but {checkpoint} is a "
                         f"'{config['model']['size']}' model: fine-tune and train at the same model size")
    if heads_embedding(heads) != config["embedding"]:
        raise ValueError(f"{audio_model}: the audio head of {heads_embedding(heads)}, but "
                         f"{checkpoint} was trained on the {config['embedding']} embeddings")
    superres = None if upscale is None else load_upscaler(upscale, unet, config, checkpoint, device)
    clip = read_clip(audio, float(seconds if seconds is not None else config["length_s"]))
    warn_if_silent(clip, audio)
    encoder = audio_encoder(heads, audio_model, device)
    with torch.no_grad():
        embedding = encoder(clip.to(device)).float().cpu().numpy()
    log.info("%s: embedded %s with %s; sampling at guidance %g", checkpoint, audio, audio_model, guidance)
    cond = np.repeat(embedding, n, axis=0)
    batch = min(n, GENERATE_BATCH)
    images = generate_images(unet, cond, sampler=sampler, steps=steps, guidance=guidance, seed=seed,
                             batch_size=batch, device=device, source=checkpoint)
    if superres is None:
        return images, None
    return images, upscale_images(superres, images, cond, sampler=upscale.sampler, steps=upscale.steps,
                                  aug_level=upscale.aug_level, seed=seed, batch_size=batch, device=device,
                                  source=upscale.checkpoint)
