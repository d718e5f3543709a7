"""Sampling with classifier-free guidance, and the `sample` stage (images for every checkpoint).

Guidance follows Capelle's code and the thesis: eps = eps_u + s (eps_c - eps_u), s = 1 is plain conditional
sampling. The unconditional branch is the same network given an all-zero embedding (the null condition used
in training), and both halves go through the network as ONE batched call.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from a2i.config import SampleConfig
from a2i.data.dataset import PreparedDataset
from a2i.devices import select_device, set_threads
from a2i.diffusion.checkpoint import read_checkpoint
from a2i.diffusion.schedule import Schedule
from a2i.diffusion.unet import UNet
from a2i.io import atomic_path, remove_stale_temps, save_npz, write_json
from a2i.variants import PREPARED, Variant, diffusion_dir, embeddings_dir, sample_name, samples_dir

log = logging.getLogger(__name__)

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# Validation images start from other noise than the test images of the same sampling seed: a checkpoint chosen on
# validation must not be chosen for how it treats the test images' noise.
SPLIT_SEED_OFFSET = {"test": 0, "val": 1_000_003}


def guided_eps(model: Denoiser, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance: float) -> torch.Tensor:
    """eps_u + s (eps_c - eps_u) from one forward over [conditional; unconditional]; s = 1 skips the latter."""
    steps = t.expand(x.shape[0])
    if guidance == 1:
        return model(x, steps, cond).float()
    eps = model(torch.cat([x, x]), torch.cat([steps, steps]), torch.cat([cond, torch.zeros_like(cond)])).float()
    eps_c, eps_u = eps.chunk(2)
    return eps_u + guidance * (eps_c - eps_u)


@torch.no_grad()
def sample(model: Denoiser, cond: torch.Tensor, *, shape: tuple[int, ...], sampler: str, steps: int, guidance: float,
           generator: torch.Generator, schedule: Schedule = Schedule(), ddpm_variance: str = "fixed_small",
           progress: bool = False) -> torch.Tensor:
    """Draw one x0 per row of `cond` ([B, 1024]); `shape` is one sample's shape, e.g. (3, 64, 64).

    `sampler`: `ddpm` (ancestral; use steps = T; its posterior variance `ddpm_variance`), `ddim` (eta 0) or
    `dpmpp` (DPM-Solver++ 2M). All noise comes from `generator` (on cond's device). Returns x0 in model space,
    unclamped, float32.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    scheduler = schedule.scheduler(sampler, ddpm_variance)
    scheduler.set_timesteps(steps, device=cond.device)
    x = torch.randn((cond.shape[0], *shape), generator=generator, device=cond.device) * scheduler.init_noise_sigma
    for t in tqdm(scheduler.timesteps, desc=f"{sampler}-{steps}", disable=not progress, leave=False):
        eps = guided_eps(model, x, t.to(cond.device, torch.long).reshape(1), cond, guidance)
        x = scheduler.step(eps, t, x, generator=generator).prev_sample
    return x


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Model space [-1, 1], [B, 3, H, W] -> uint8 [B, H, W, 3]."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, columns: int) -> Image.Image:
    """uint8 [n, H, W, 3] -> one PIL image, row-major, `columns` wide."""
    n, h, w, _ = images.shape
    rows = max(1, -(-n // columns))
    canvas = np.full((rows * h, columns * w, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
    return Image.fromarray(canvas)


def class_grid(images: np.ndarray, labels: np.ndarray, per_class: int = 8) -> Image.Image:
    """One row per class present, its first `per_class` images (fewer columns when no class has as many)."""
    rows = [np.flatnonzero(labels == label)[:per_class] for label in np.unique(labels)]
    per_class = max(len(row) for row in rows)
    blank = np.full_like(images[0], 255)
    tiles = [images[row[i]] if i < len(row) else blank for row in rows for i in range(per_class)]
    return image_grid(np.stack(tiles), per_class)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing on CPU (fp32 keeps CPU runs bitwise reproducible)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def generate_images(model: UNet, cond: np.ndarray | torch.Tensor, *, sampler: str, steps: int,
                    guidance: float, seed: int, schedule: Schedule, batch_size: int,
                    device: torch.device, ddpm_variance: str = "fixed_small",
                    source: str | Path = "the model") -> np.ndarray:
    """uint8 [n, S, S, 3] (S = model.image_size), one image per condition row; the same seed gives the same
    images. Non-finite samples, or images that are all one value, are a ValueError naming `source` (the
    checkpoint): broken weights, whose black images would otherwise be scored."""
    cond = torch.as_tensor(np.asarray(cond, np.float32))
    generator = torch.Generator(device=device).manual_seed(seed)
    run = f"{sampler}, guidance {guidance:g}, seed {seed}"
    out = []
    for start in tqdm(range(0, len(cond), batch_size), desc=f"{sampler} g={guidance:g} seed={seed}", leave=False):
        batch = cond[start:start + batch_size].to(device)
        with autocast(device):
            x = sample(model, batch, shape=(3, model.image_size, model.image_size), sampler=sampler, steps=steps,
                       guidance=guidance, generator=generator, schedule=schedule, ddpm_variance=ddpm_variance)
        if not torch.isfinite(x).all():
            raise ValueError(f"{source}: non-finite samples ({run}): its weights are broken")
        out.append(to_uint8(x))
    images = np.concatenate(out)
    if images.min() == images.max():
        raise ValueError(f"{source}: all {len(images)} images are the single value {images.min()} ({run}): "
                         "its weights are broken")
    return images


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the `epoch_EEE.pt` files in a run directory, oldest first."""
    found = []
    for path in Path(run_dir).glob("epoch_*.pt"):
        match = re.fullmatch(r"epoch_(\d+)\.pt", path.name)
        if match:
            found.append((int(match[1]), path))
    return sorted(found)


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[UNet, dict]:
    """(EMA U-Net in eval mode, run config) from a verified training checkpoint (a2i.diffusion.checkpoint);
    ValueError naming the file when it is damaged or its weights do not fit the U-Net profile its config names."""
    path = Path(path)
    state = read_checkpoint(path)
    config = state["config"]
    try:
        model = UNet(**config["model"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a diffusion checkpoint of a2i ({type(err).__name__}: {err})") from None
    try:
        model.load_state_dict(state["ema"])
    except RuntimeError:
        raise ValueError(f"{path}: weights do not fit the '{config['model']['profile']}' U-Net profile "
                         f"named in its config (a checkpoint of another profile?)") from None
    return model.to(device, memory_format=torch.channels_last).eval(), config


def load_embeddings(root: Path, embedding: str, split: str, rows: int) -> np.ndarray:
    """float32 [rows, 1024] of `data/embeddings/<embedding>/<split>.npy`, checked against the index length."""
    path = root / embeddings_dir(embedding) / f"{split}.npy"
    if not path.is_file():
        raise ValueError(f"{path} not found (run `embed --embedding {embedding}` first)")
    array = np.load(path)
    if array.shape != (rows, 1024):
        raise ValueError(f"{path} has shape {array.shape}, expected ({rows}, 1024) to match its index")
    if not np.isfinite(array).all():
        raise ValueError(f"{path} contains NaN or Inf")
    return array.astype(np.float32, copy=False)


def held_out_conditions(variant: Variant, root: Path, split: str, per_class: int | None,
                        seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings [n,1024], labels [n], rows [n]) of a held-out split (`val` or `test`); `per_class` draws a
    seeded subset."""
    labels = PreparedDataset(root / PREPARED, variant.length, split).labels
    embeddings = load_embeddings(root, variant.embedding, split, len(labels))
    rows = np.arange(len(labels))
    if per_class is not None:
        rng = np.random.default_rng(seed)
        rows = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                                       for c in np.unique(labels)]))
    return np.asarray(embeddings[rows], np.float32), labels[rows], rows


def sweep_epoch(checkpoint_epochs: list[int], cfg_epoch: int | None) -> int:
    """The checkpoint of the CFG sweep: `cfg_epoch` (thesis: 70), or the final one when None."""
    if cfg_epoch is None:
        return max(checkpoint_epochs)
    if cfg_epoch not in checkpoint_epochs:
        raise ValueError(f"sample.cfg_epoch={cfg_epoch} is not a checkpoint epoch (have {checkpoint_epochs}); "
                         "set study.epoch to one of them or null for the final checkpoint")
    return cfg_epoch


def guidance_plan(variant: Variant, checkpoint_epochs: list[int],
                  params: SampleConfig | dict) -> dict[int, list[float]]:
    """Guidance scales per checkpoint epoch: `guidance` (1 for nocfg) everywhere, plus the CFG sweep
    (`cfg_scales`; nocfg: 1 only) at the `cfg_epoch` checkpoint of the swept embedding variant."""
    config = SampleConfig.of(params)
    nocfg = variant.study == "nocfg"
    base = 1.0 if nocfg else config.guidance
    plan = {epoch: [base] for epoch in checkpoint_epochs}
    if variant.embedding == config.cfg_sweep and variant.study in (None, "nocfg"):
        sweep = [1.0] if nocfg else config.cfg_scales
        epoch = sweep_epoch(checkpoint_epochs, config.cfg_epoch)
        plan[epoch] = sorted(set(plan[epoch]) | set(sweep))
    return plan


def sample_variant(variant: str, params: SampleConfig | dict, root: Path = Path("."),
                   device: torch.device | None = None) -> list[Path]:
    """The `sample` stage: `data/samples/<variant>/<sample_name>.{npz,png}` for every checkpoint, seed and
    guidance of `guidance_plan` on the test conditions, and, for the main grid's variants, the same at the main
    guidance on `val_per_class` validation conditions per instrument (`.../val/`: model selection on
    validation). Returns the written .npz paths."""
    v = Variant.parse(variant)
    config = SampleConfig.of(params)
    set_threads(config.threads)
    device = device or select_device()
    found = checkpoints(root / diffusion_dir(v.name))
    if not found:
        raise ValueError(f"no checkpoints in {root / diffusion_dir(v.name)} (run `train --variant {v.name}`)")
    remove_stale_temps(root / samples_dir(v.name))
    plans = {"test": guidance_plan(v, [epoch for epoch, _ in found], config)}
    conditions = {"test": held_out_conditions(v, root, "test", config.per_class, config.seed)}
    if v.study is None:
        plans["val"] = {epoch: [config.guidance] for epoch, _ in found}
        conditions["val"] = held_out_conditions(v, root, "val", config.val_per_class, config.seed)
    written = []
    for epoch, path in found:
        model, run = load_generator(path, device)
        for split, plan in plans.items():
            cond, labels, rows = conditions[split]
            out_dir = root / samples_dir(v.name, split)
            for guidance in plan[epoch]:
                for seed in config.seeds:
                    images = generate_images(model, cond, sampler=config.sampler, steps=config.steps,
                                             guidance=guidance, seed=seed + SPLIT_SEED_OFFSET[split],
                                             schedule=Schedule(**run["model"]["schedule"]),
                                             batch_size=config.batch_size, device=device,
                                             ddpm_variance=config.ddpm_variance, source=path)
                    name = sample_name(epoch, guidance, seed)
                    save_npz(out_dir / f"{name}.npz", images=images, labels=labels, rows=rows)
                    if split == "test":
                        save_png(class_grid(images, labels), out_dir / f"{name}.png")
                    written.append(out_dir / f"{name}.npz")
                    log.info("%s: %d %s images -> %s", v.name, len(images), split, out_dir / f"{name}.npz")
    return written


def save_png(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def compare_samplers(variant: str, *, root: Path = Path("."), out: Path | None = None, per_class: int = 20,
                     guidance: float = 3.0, seed: int = 0, batch_size: int = 64,
                     runs: tuple[tuple[str, int], ...] = (("ddpm", 1000), ("dpmpp", 25)),
                     device: torch.device | None = None) -> dict:
    """Sample the same test conditions from the final checkpoint with each (sampler, steps) of `runs`, for
    the adherence comparison (classify the `.npz` files the same way). Writes `<out>/<sampler>-<steps>.npz`
    and `timing.json` (seconds per run, the first run's time over the last's, and the files); returns it."""
    v = Variant.parse(variant)
    device = device or select_device()
    found = checkpoints(root / diffusion_dir(v.name))
    if not found:
        raise ValueError(f"no checkpoints in {root / diffusion_dir(v.name)}")
    epoch, path = found[-1]
    model, config = load_generator(path, device)
    cond, labels, rows = held_out_conditions(v, root, "test", per_class, seed)
    out = out or root / "data" / "sampler_check" / v.name
    timing = {"variant": v.name, "epoch": epoch, "guidance": guidance, "n": len(labels), "device": str(device)}
    for sampler, steps in runs:
        start = time.perf_counter()
        images = generate_images(model, cond, sampler=sampler, steps=steps, guidance=guidance, seed=seed,
                                 schedule=Schedule(**config["model"]["schedule"]), batch_size=batch_size,
                                 device=device, source=path)
        timing[f"{sampler}-{steps}_s"] = time.perf_counter() - start
        save_npz(out / f"{sampler}-{steps}.npz", images=images, labels=labels, rows=rows)
        timing.setdefault("files", {})[f"{sampler}-{steps}"] = str(out / f"{sampler}-{steps}.npz")
    first, last = (f"{sampler}-{steps}_s" for sampler, steps in (runs[0], runs[-1]))
    timing["speedup"] = timing[first] / timing[last]
    write_json(out / "timing.json", timing)
    return timing
