"""The `sample` stage: images from every checkpoint of a variant for the test (and validation) conditions, and
the sampler comparison tool."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from a2i.config import SampleConfig
from a2i.data.dataset import PreparedDataset, load_embeddings
from a2i.devices import select_device, set_threads
from a2i.diffusion.checkpoint import checkpoints, load_generator
from a2i.diffusion.images import class_grid, save_png
from a2i.diffusion.sampling import checkpoint_guidance, generate_images
from a2i.io import remove_stale_temps, save_npz, write_json
from a2i.variants import PREPARED, SAMPLER_CHECKS, Variant, diffusion_dir, sample_name, samples_dir

log = logging.getLogger(__name__)

# Validation images start from other noise than the test images of the same sampling seed: a checkpoint chosen on
# validation must not be chosen for how it treats the test images' noise.
SPLIT_SEED_OFFSET = {"test": 0, "val": 1_000_003}


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
        model, _ = load_generator(path, device)
        for split, plan in plans.items():
            cond, labels, rows = conditions[split]
            out_dir = root / samples_dir(v.name, split)
            for guidance in plan[epoch]:
                for seed in config.seeds:
                    images = generate_images(model, cond, sampler=config.sampler, steps=config.steps,
                                             guidance=guidance, seed=seed + SPLIT_SEED_OFFSET[split],
                                             batch_size=config.batch_size, device=device,
                                             ddpm_variance=config.ddpm_variance, source=path)
                    name = sample_name(epoch, guidance, seed)
                    save_npz(out_dir / f"{name}.npz", images=images, labels=labels, rows=rows)
                    if split == "test":
                        save_png(class_grid(images, labels), out_dir / f"{name}.png")
                    written.append(out_dir / f"{name}.npz")
                    log.info("%s: %d %s images -> %s", v.name, len(images), split, out_dir / f"{name}.npz")
    return written


def compare_samplers(variant: str, *, root: Path = Path("."), out: Path | None = None, per_class: int = 20,
                     guidance: float | None = None, seed: int = 0, batch_size: int = 64,
                     runs: tuple[tuple[str, int], ...] = (("ddpm", 1000), ("dpmpp", 25)),
                     ddpm_variance: str = "fixed_small", device: torch.device | None = None,
                     image_size: int | None = None) -> dict:
    """Sample the same test conditions from the final checkpoint with each (sampler, steps) of `runs` (ddpm with
    the posterior variance `ddpm_variance`; `guidance` as `checkpoint_guidance` allows), for the adherence
    comparison (classify the `.npz` files the same way; `image_size`: the side the scoring classifier takes,
    checked before sampling). Writes `<out>/<sampler>-<steps>.npz` and `timing.json` (seconds per run, the first
    run's time over the last's, and the files) once every run is done; returns it."""
    v = Variant.parse(variant)
    device = device or select_device()
    found = checkpoints(root / diffusion_dir(v.name))
    if not found:
        raise ValueError(f"no checkpoints in {root / diffusion_dir(v.name)}")
    epoch, path = found[-1]
    model, config = load_generator(path, device)
    if image_size not in (None, model.image_size):
        raise ValueError(f"--classifier scores {image_size}x{image_size} images, {path} draws "
                         f"{model.image_size}x{model.image_size}: use the classifier of its resolution")
    guidance = checkpoint_guidance(config, guidance, path)
    cond, labels, rows = held_out_conditions(v, root, "test", per_class, seed)
    out = out or root / SAMPLER_CHECKS / v.name
    timing = {"variant": v.name, "epoch": epoch, "guidance": guidance, "ddpm_variance": ddpm_variance,
              "n": len(labels), "device": str(device)}
    drawn = {}  # written once every run is done: a failed run leaves no half comparison
    for sampler, steps in runs:
        start = time.perf_counter()
        drawn[f"{sampler}-{steps}"] = generate_images(model, cond, sampler=sampler, steps=steps, guidance=guidance,
                                                      seed=seed, batch_size=batch_size, device=device,
                                                      ddpm_variance=ddpm_variance, source=path)
        timing[f"{sampler}-{steps}_s"] = time.perf_counter() - start
    first, last = (f"{sampler}-{steps}_s" for sampler, steps in (runs[0], runs[-1]))
    timing["speedup"] = timing[first] / timing[last]
    timing["files"] = {name: str(out / f"{name}.npz") for name in drawn}
    for name, images in drawn.items():
        save_npz(out / f"{name}.npz", images=images, labels=labels, rows=rows)
    write_json(out / "timing.json", timing)
    return timing
