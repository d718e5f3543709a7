"""Diffusion super-resolution of the generated images: a conditional U-Net in the style of SR3 (Saharia et al.
2021, "Image Super-Resolution via Iterative Refinement") as the super-resolution stage of a cascade (Ho et al.
2021, "Cascaded Diffusion Models for High Fidelity Image Generation", CDM).

- The low-resolution image is upsampled bicubically to the output size and concatenated with the noisy
  high-resolution image x_t along the channels (SR3 section 2.1, CDM section 3).
- Noise-conditioning augmentation (CDM section 4.1): in training the upsampled low-resolution image is noised as
  q(z_s | z_0) with the same DDPM schedule, s uniform in [0, aug_max), and s is embedded like t; at sampling one
  fixed level `aug_level` is used. The base model's samples are not the real low-resolution images it is
  trained on, and the augmentation keeps the super-resolution model from trusting their small-scale detail.
- Truncated diffusion (`t_start`): the network is trained on t in [0, t_start) only, and `upscale` starts the
  chain at t_start from the noised upsampled image instead of from pure noise, as SDEdit (Meng et al. 2022,
  "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential Equations"); ResShift (Yue et al. 2023)
  and SRDiff (Li et al. 2022) start from, or diffuse around, the upsampled image in the same way. The missing
  detail is low-variance, so only the low-noise levels matter, and a small network trained on them alone learns
  them in a fraction of the steps. None (the default) is plain SR3: all T levels, sampling from pure noise.
- Residual target (`residual`, SRDiff, Li et al. 2022, "SRDiff: Single Image Super-Resolution with Diffusion
  Probabilistic Models", section 3.2): the diffusion runs on r = (x_hr - bicubic(x_lr)) / `residual_scale`
  instead of x_hr, and `upscale` returns bicubic + residual_scale * r; a model that predicts a zero residual
  reproduces the bicubic baseline exactly, and `residual_scale` (~ the std of r) gives r unit variance, so that
  the schedule's noise levels mean what they mean for images.
- The audio embedding is an optional extra condition (`audio`), projected by the base U-Net's encoding layer,
  added to the time embedding and cross-attended to, as in the base network.

Everything else is the base pipeline's: the U-Net levels and blocks of `a2i.diffusion.unet`, the loss, Adam and
EMA of `a2i.diffusion.train`, the samplers of `a2i.diffusion.sampling` and the checkpoint digest of
`a2i.diffusion.checkpoint`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from a2i.config import TrainSRConfig
from a2i.data.dataset import PreparedDataset, load_embeddings
from a2i.devices import select_device, set_threads
from a2i.diffusion.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from a2i.diffusion.images import to_uint8
from a2i.diffusion.sampling import autocast, sample
from a2i.diffusion.schedule import LOSS_WEIGHTINGS, Schedule, add_noise
from a2i.diffusion.train import EMA, to_model_space, training_step
from a2i.diffusion.unet import EMB_DIM, EncodingLayer, Levels, get_size, timestep_embedding
from a2i.io import load_npy
from a2i.variants import HR_IMAGES, PREPARED, SUPERRES_MODEL, Variant

log = logging.getLogger(__name__)


class SuperResUNet(Levels):
    """`model(x_t [B,3,S,S], t [B], low_up [B,3,S,S], aug_t [B], cond [B,1024] | None)` -> predicted noise
    [B,3,S,S], S = `high_size`; `low_up` is the bicubically upsampled low-resolution image (model space), noised
    to augmentation level `aug_t`. `cond` is the audio embedding, required with `audio` and ignored without.
    With `residual` the predicted noise is that of the scaled residual (x_hr - low_up) / residual_scale; with
    `t_start` the network is trained on, and sampled from, t < t_start only (module docstring). `aug_max`: the
    augmentation levels it is trained on, and can be sampled at, are [0, aug_max)."""

    def __init__(self, size: str = "thesis", low_size: int = 64, high_size: int = 256, audio: bool = False,
                 dropout: float = 0.1, schedule: dict | None = None, output_skip: bool = False,
                 t_start: int | None = None, residual: bool = False, residual_scale: float = 1.0,
                 aug_max: int = 1):
        super().__init__()
        if low_size < 1 or high_size % low_size:
            raise ValueError(f"high_size must be a multiple of low_size, got low_size={low_size}, "
                             f"high_size={high_size}")
        factor = high_size // low_size
        if factor < 2 or factor & (factor - 1):
            raise ValueError(f"the upsampling factor high_size / low_size must be a power of two >= 2, got {factor}")
        if high_size % 8:
            raise ValueError(f"high_size must be a multiple of 8 for the three 2x poolings, got {high_size}")
        schedule = Schedule(**(schedule or {}))
        if t_start is not None and not 2 <= t_start <= schedule.timesteps:  # a chain below it takes >= 2 steps
            raise ValueError(f"t_start must be in [2, {schedule.timesteps}] or None, got {t_start}")
        if not residual_scale > 0:
            raise ValueError(f"residual_scale must be > 0, got {residual_scale}")
        if not 1 <= aug_max <= schedule.timesteps:
            raise ValueError(f"aug_max must be in [1, {schedule.timesteps}], got {aug_max}")
        self.config = {"size": size, "low_size": low_size, "high_size": high_size, "audio": audio,
                       "dropout": dropout, "schedule": schedule.as_dict(), "output_skip": output_skip,
                       "t_start": t_start, "residual": residual, "residual_scale": float(residual_scale),
                       "aug_max": aug_max}
        self.schedule = schedule  # the samplers read it from here: a model cannot be sampled with another one
        self.register_buffer("alphas_cumprod", schedule.alphas_cumprod())
        self.output_skip = output_skip
        # CDM 4.1: the augmentation level gets its own embedding, added to the time embedding.
        self.aug_embed = nn.Linear(EMB_DIM, EMB_DIM)
        self.project = EncodingLayer(dropout, standardize=False, norm=True) if audio else None
        # Input: x_t and the upsampled low-resolution image, 3 + 3 channels (SR3 2.1).
        self.build_levels(6, get_size(size), high_size, cross=audio)

    @property
    def low_size(self) -> int:
        return self.config["low_size"]

    @property
    def high_size(self) -> int:
        return self.config["high_size"]

    @property
    def audio(self) -> bool:
        return self.config["audio"]

    @property
    def t_start(self) -> int | None:
        """Trained on t < t_start, sampled from t_start; None: all T levels, sampled from pure noise."""
        return self.config["t_start"]

    @property
    def aug_max(self) -> int:
        """Trained on augmentation levels [0, aug_max) of the low-resolution input (CDM 4.1)."""
        return self.config["aug_max"]

    @property
    def residual(self) -> bool:
        return self.config["residual"]

    def target(self, high: torch.Tensor, low_up: torch.Tensor) -> torch.Tensor:
        """What the diffusion runs on (model space): the high-resolution image, or its scaled residual."""
        return (high - low_up) / self.config["residual_scale"] if self.residual else high

    def image(self, x0: torch.Tensor, low_up: torch.Tensor) -> torch.Tensor:
        """The high-resolution image (model space) of a sampled `target`."""
        return low_up + self.config["residual_scale"] * x0 if self.residual else x0

    def forward(self, x: torch.Tensor, t: torch.Tensor, low_up: torch.Tensor, aug_t: torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        emb = timestep_embedding(t) + self.aug_embed(timestep_embedding(aug_t))
        context = None
        if self.project is not None:
            if cond is None:
                raise ValueError("this super-resolution model is conditioned on the audio embedding: pass cond")
            c = self.project(cond.float())
            emb, context = emb + c, c[:, None]
        out = self.levels(torch.cat([x, low_up.to(x.dtype)], dim=1), emb, context)
        return self.noise(out, x, t)


# ------------------------------------------------------------------------------------------ upsampling

def _check_images(images: np.ndarray, name: str, size: int | None = None) -> np.ndarray:
    images = np.asarray(images)
    side = images.shape[1] if images.ndim == 4 else None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[2:] != (side, 3) or size not in (None, side):
        want = f"{size}, {size}" if size else "s, s"
        raise ValueError(f"{name} must be uint8 [n, {want}, 3], got {images.dtype} {images.shape}")
    return images


def _bicubic_pixels(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [n, s, s, 3] -> float [n, 3, size, size] of whole pixel values: bicubic, clamped to [0, 255],
    rounded. Upsampling only, so no antialiasing filter is involved."""
    x = images.permute(0, 3, 1, 2).float()
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 255).round()


def bicubic(images: np.ndarray, size: int) -> np.ndarray:
    """The bicubic baseline: uint8 [n, s, s, 3] -> uint8 [n, size, size, 3]."""
    images = _check_images(images, "images")
    return _bicubic_pixels(torch.from_numpy(images), size).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _conditioning(low: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """The network's low-resolution input: exactly the bicubic baseline's image, in model space [-1, 1]."""
    x = _bicubic_pixels(low.to(device), size) / 127.5 - 1
    return x.contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------------ training

def _check_training_data(model: SuperResUNet, low: np.ndarray, high: np.ndarray, cond: np.ndarray | None) -> None:
    _check_images(low, "low", model.low_size)
    _check_images(high, "high", model.high_size)
    if len(low) != len(high):
        raise ValueError(f"low and high must hold the same images, got {len(low)} and {len(high)}")
    if model.audio and (cond is None or np.shape(cond) != (len(low), 1024)):
        raise ValueError(f"an audio-conditioned model needs cond [{len(low)}, 1024], got "
                         f"{None if cond is None else np.shape(cond)}")


def _check_training_params(steps: int, batch_size: int, n: int, loss_weighting: str, log_every: int) -> None:
    if steps < 1 or log_every < 1:
        raise ValueError(f"steps and log_every must be >= 1, got {steps}, {log_every}")
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] (the training pairs), got {batch_size}")
    if loss_weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss_weighting must be one of {LOSS_WEIGHTINGS}, got '{loss_weighting}'")


def train_superres(low: np.ndarray, high: np.ndarray, cond: np.ndarray | None, *, model_kwargs: dict, steps: int,
                   batch_size: int, lr: float, ema_decay: float, loss_weighting: str, seed: int,
                   device: torch.device | str, progress: bool = True,
                   log_every: int = 100) -> tuple[SuperResUNet, dict]:
    """Train a `SuperResUNet(**model_kwargs)` on pairs of the same frames at both sizes (uint8 [n, s, s, 3] and
    [n, S, S, 3]; `cond` [n, 1024] for an audio-conditioned model) with the base trainer's loss, Adam and EMA.

    Returns (the EMA model in eval mode, stats): stats["loss"] is the mean training loss of each `log_every`
    steps, stats["train"] the training parameters. All randomness (model initialisation, data order, t, noise,
    augmentation levels and noise) comes from `seed`: on the CPU the same seed gives bitwise the same weights.
    The timesteps are uniform in [0, t_start) of the model (`model_kwargs["t_start"]`, default all T), the
    augmentation levels in [0, aug_max), the target the model's (`residual`).
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    model = SuperResUNet(**model_kwargs)
    _check_training_data(model, low, high, cond)
    n = len(low)
    _check_training_params(steps, batch_size, n, loss_weighting, log_every)
    low_t, high_t = torch.from_numpy(np.ascontiguousarray(low)), torch.from_numpy(np.ascontiguousarray(high))
    cond_t = torch.as_tensor(np.asarray(cond, np.float32)) if model.audio else None

    model.to(device, memory_format=torch.channels_last).train()
    ema = EMA(model, ema_decay)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    generator = torch.Generator(device=device).manual_seed(seed)
    shape = (batch_size, 3, model.high_size, model.high_size)
    order, position = None, n
    losses, window = [], torch.zeros((), device=device)
    for step in tqdm(range(1, steps + 1), desc="super-resolution", disable=not progress, leave=False):
        if position + batch_size > n:  # a new epoch: a fresh permutation, the remainder of the old one dropped
            order, position = torch.randperm(n, generator=generator, device=device).cpu(), 0
        rows = order[position:position + batch_size]
        position += batch_size
        t = torch.randint(0, model.t_start or model.schedule.timesteps, (batch_size,), generator=generator,
                          device=device)
        noise = torch.randn(shape, generator=generator, device=device).contiguous(memory_format=torch.channels_last)
        aug_t = torch.randint(0, model.aug_max, (batch_size,), generator=generator, device=device)
        aug_noise = torch.randn(shape, generator=generator, device=device)
        base = _conditioning(low_t[rows], model.high_size, device)
        low_up = add_noise(base, aug_noise, aug_t, model.alphas_cumprod)
        batch_cond = cond_t[rows].to(device) if cond_t is not None else None

        def forward(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
            return model(x, t, low_up, aug_t, c)

        x0 = model.target(to_model_space(high_t[rows], device), base)
        window += training_step(model, optimizer, ema, step, x0, batch_cond, t, noise, loss_weighting,
                                forward=forward)
        if step % log_every == 0 or step == steps:
            mean = float(window) / (step - (len(losses) * log_every))
            if not np.isfinite(mean):
                raise FloatingPointError(f"super-resolution training: non-finite loss by step {step}")
            losses.append(mean)
            window.zero_()
    train = {"steps": steps, "batch_size": batch_size, "lr": lr, "ema_decay": ema_decay,
             "loss_weighting": loss_weighting, "seed": seed}
    return ema.model.eval(), {"loss": losses, "log_every": log_every, "train": train}


# ------------------------------------------------------------------------------------------ checkpoints

def superres_state(model: SuperResUNet, stats: dict) -> dict:
    """What `a2i.diffusion.checkpoint.save_checkpoint` writes for a trained (EMA) super-resolution model; the
    same weights under "model" and "ema", the two that checkpoint readers verify."""
    weights = model.state_dict()
    return {"model": weights, "ema": weights, "config": model.config, "stats": stats}


def load_superres(path: str | Path, device: torch.device | str = "cpu") -> SuperResUNet:
    """The EMA model of a verified super-resolution checkpoint, in eval mode; ValueError naming the file when it
    is damaged or is not a super-resolution checkpoint."""
    path = Path(path)
    state = read_checkpoint(path)
    try:
        model = SuperResUNet(**state["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a super-resolution checkpoint of a2i ({type(err).__name__}: {err})") from None
    try:
        model.load_state_dict(state["ema"])
    except RuntimeError:
        raise ValueError(f"{path}: weights do not fit the super-resolution network its config describes") from None
    return model.to(device, memory_format=torch.channels_last).eval()


# ------------------------------------------------------------------------------------------ sampling

def check_aug_level(model: SuperResUNet, aug_level: int, source: str | Path, name: str = "aug_level") -> None:
    """ValueError unless `aug_level` (`name` in the message) is one of the augmentation levels `model` (from
    `source`) was trained on."""
    if not 0 <= aug_level < model.aug_max:
        raise ValueError(f"{name} must be in [0, {model.aug_max}) (the augmentation levels {source} was trained "
                         f"on: train_sr.aug_max), got {aug_level}")


def check_steps(model: SuperResUNet, steps: int, source: str | Path, name: str = "steps") -> None:
    """ValueError unless `model` (from `source`) can take `steps` (`name` in the message) steps on the noise
    levels it was trained on: below its t_start when truncated, else its schedule's."""
    if model.t_start is not None and not 2 <= steps <= model.t_start:
        raise ValueError(f"{name} must be in [2, {model.t_start}] for {source}, truncated at t_start "
                         f"{model.t_start} (train_sr.t_start: it was trained on the noise levels below it; its "
                         f"chain's last step is at t = 0), got {steps}")
    model.schedule.check_steps(steps, source, name)


def check_embedding(path: str | Path, embedding: str, base: str | Path, name: str | Path | None = None) -> None:
    """ValueError unless the audio-conditioned super-resolution checkpoint `path` (`name` in the message) was trained
    on the embedding `base`, the model whose images it upsamples, is conditioned on; a checkpoint that does not
    record its training embedding (not written by `train_sr`) passes."""
    trained_on = load_checkpoint(Path(path)).get("stats", {}).get("params", {}).get("embedding")
    if trained_on not in (None, embedding):
        raise ValueError(f"{name or path} was trained on {trained_on} embeddings, {base} is conditioned on "
                         f"{embedding}: set train_sr.embedding={embedding}")


@torch.no_grad()
def upscale(model: SuperResUNet, low: np.ndarray, cond: np.ndarray | None, *, sampler: str, steps: int,
            aug_level: int, seed: int, batch_size: int, device: torch.device | str,
            source: str | Path = "the model", t_start: int | None = None) -> np.ndarray:
    """uint8 [n, S, S, 3] from uint8 [n, s, s, 3] (s, S: the model's low and high sizes), the low-resolution input
    noised to the fixed augmentation level `aug_level` (CDM 4.1); `cond` [n, 1024] for an audio-conditioned
    model, else ignored. The same seed gives the same images; non-finite samples are a ValueError naming `source`
    (the checkpoint).

    A truncated model (`model.t_start`) starts at t_start from the noised upsampled image (SDEdit; with `residual`
    from a zero residual, i.e. the bicubic image) and takes `steps` steps below it; `t_start` here overrides the
    model's with a lower start (at most the model's: it has not learnt the levels above). A model without t_start
    samples from pure noise, unless `t_start` is given."""
    device = torch.device(device)
    low = torch.from_numpy(np.ascontiguousarray(_check_images(low, "low", model.low_size)))
    check_aug_level(model, aug_level, source)
    trained = model.t_start or model.schedule.timesteps
    if t_start is not None and not steps <= t_start <= trained:
        raise ValueError(f"t_start must be in [{steps}, {trained}] (the levels the model was trained on), "
                         f"got {t_start}")
    if t_start is None:
        check_steps(model, steps, source)
    start = t_start if t_start is not None else model.t_start
    if model.audio and (cond is None or len(cond) != len(low)):
        raise ValueError(f"an audio-conditioned model needs one cond row per image ({len(low)})")
    cond = torch.as_tensor(np.asarray(cond, np.float32)) if model.audio else None
    size = model.high_size
    generator = torch.Generator(device=device).manual_seed(seed)
    out = []
    for first in tqdm(range(0, len(low), batch_size), desc=f"upscale {sampler}-{steps}", leave=False):
        batch = slice(first, first + batch_size)
        base = _conditioning(low[batch], size, device)
        aug_t = torch.full((len(base),), aug_level, device=device)
        low_up = add_noise(base, torch.randn(base.shape, generator=generator, device=device), aug_t,
                           model.alphas_cumprod)
        batch_cond = cond[batch].to(device) if cond is not None else None

        def denoise(x: torch.Tensor, t: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
            return model(x, t, low_up, aug_t, batch_cond)

        # `sample` reads the batch size and device from its condition rows; the real condition is bound above.
        rows = torch.empty((len(low_up), 0), device=device)
        x_init = None if start is None else model.target(base, base)  # the upsampled image: a zero residual
        with autocast(device):
            x = sample(denoise, rows, shape=(3, size, size), sampler=sampler, steps=steps, guidance=1.0,
                       generator=generator, schedule=model.schedule, x_init=x_init, t_start=start)
        x = model.image(x, base)
        if not torch.isfinite(x).all():
            raise ValueError(f"{source}: non-finite super-resolution samples ({sampler}, seed {seed}): "
                             "its weights are broken")
        out.append(to_uint8(x))
    return np.concatenate(out)


# ------------------------------------------------------------------------------------------ the stage

def training_pairs(root: Path, embedding: str, audio: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(low uint8 [n, s, s, 3], high uint8 [n, S, S, 3], the audio embeddings [n, 1024] or None) of the train
    samples of `embedding`'s length: one frame per sample, at both prepared sizes."""
    data = PreparedDataset(root / PREPARED, Variant.parse(embedding).length, "train")
    path = root / PREPARED / HR_IMAGES
    if not path.is_file():
        raise ValueError(f"{path} not found: run `prepare` with prepare.hr_image_size set")
    high = np.asarray(load_npy(path)[data.index["image"].to_numpy()])
    cond = load_embeddings(root, embedding, "train", len(data)) if audio else None
    return data.images(), high, cond


def train_sr(params: TrainSRConfig | dict, root: Path = Path(".")) -> Path:
    """Train the super-resolution model and write `models/superres.pt` (its EMA weights, config and loss)."""
    config = TrainSRConfig.of(params)
    set_threads(config.threads)
    device = select_device()
    low, high, cond = training_pairs(root, config.embedding, config.audio)
    log.info("super-resolution %d -> %d on %d train frames of %s%s", low.shape[1], high.shape[1], len(low),
             config.embedding, " with their audio" if config.audio else "")
    model_kwargs = {"size": config.model_size, "low_size": low.shape[1], "high_size": high.shape[1],
                    "audio": config.audio, "output_skip": config.output_skip, "t_start": config.t_start,
                    "residual": config.residual, "residual_scale": config.residual_scale, "aug_max": config.aug_max}
    model, stats = train_superres(low, high, cond, model_kwargs=model_kwargs, steps=config.steps,
                                  batch_size=config.batch_size, lr=config.lr, ema_decay=config.ema_decay,
                                  loss_weighting=config.loss_weighting, seed=config.seed, device=device)
    path = root / SUPERRES_MODEL
    save_checkpoint(path, superres_state(model, {**stats, "params": asdict(config)}))
    log.info("super-resolution: loss %s per %d steps; written %s", ", ".join(f"{x:.4f}" for x in stats["loss"]),
             stats["log_every"], path)
    return path
