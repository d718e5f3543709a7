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
from a2i.diffusion.checkpoint import checkpoints, load_generator, read_checkpoint
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


def main_guidance(variant: Variant, config: SampleConfig) -> float:
    """`guidance`, or 1 for a nocfg variant (trained without the null condition: `checkpoint_guidance`)."""
    return 1.0 if variant.study == "nocfg" else config.guidance


def sweep_scales(variant: Variant, config: SampleConfig) -> list[float]:
    """The CFG sweep's scales beside the main guidance, whose images `sample_variant` draws already."""
    if variant.study is not None:
        raise ValueError(f"the CFG sweep samples the study's plain cell, not the study variant {variant.name}")
    return sorted(set(config.cfg_scales) - {config.guidance})


def sample_variant(variant: str, params: SampleConfig | dict, root: Path = Path("."),
                   device: torch.device | None = None) -> list[Path]:
    """The `sample` stage: `data/samples/<variant>/<sample_name>.{npz,png}` for every checkpoint and seed at the
    main guidance on the test conditions, and, for the main grid's variants, the same on `val_per_class`
    validation conditions per instrument (`.../val/`: model selection on validation). Returns the written .npz
    paths."""
    v = Variant.parse(variant)
    config = SampleConfig.of(params)
    found = _checkpoints(v, root)
    plan = {epoch: [main_guidance(v, config)] for epoch, _ in found}
    folders = {"test": config.per_class, "val": config.val_per_class} if v.study is None else {"test": config.per_class}
    return _draw(v, config, found, plan, folders, root, device)


def sample_cfg_sweep(variant: str, params: SampleConfig | dict, root: Path = Path("."),
                     device: torch.device | None = None) -> list[Path]:
    """The `sample_cfg` stage (thesis 4.4, Tables 5.6-5.8): the test conditions at every other scale of
    `cfg_scales` from the `cfg_epoch` checkpoint, in `data/samples_cfg/<variant>/`. Returns the written .npz
    paths (none when the sweep holds only the main guidance: the folder is still made, DVC's output)."""
    v = Variant.parse(variant)
    config = SampleConfig.of(params)
    found = _checkpoints(v, root)
    plan = {sweep_epoch([epoch for epoch, _ in found], config.cfg_epoch): sweep_scales(v, config)}
    (root / samples_dir(v.name, "cfg")).mkdir(parents=True, exist_ok=True)
    return _draw(v, config, found, plan, {"cfg": config.per_class}, root, device)


def _checkpoints(v: Variant, root: Path) -> list[tuple[int, Path]]:
    found = checkpoints(root / diffusion_dir(v.name))
    if not found:
        raise ValueError(f"no checkpoints in {root / diffusion_dir(v.name)} (run `train --variant {v.name}`)")
    return found


def _draw(v: Variant, config: SampleConfig, found: list[tuple[int, Path]], plan: dict[int, list[float]],
          folders: dict[str, int | None], root: Path, device: torch.device | None) -> list[Path]:
    """For each checkpoint `plan` names, each of its guidance scales and each sampling seed: the images of every
    `samples_dir` folder of `folders` ({folder: per_class}; `val` holds validation conditions, the others test
    conditions). Returns the written .npz paths."""
    set_threads(config.threads)
    device = device or select_device()
    splits = {folder: "val" if folder == "val" else "test" for folder in folders}
    for folder in folders:
        remove_stale_temps(root / samples_dir(v.name, folder))
    conditions = {folder: held_out_conditions(v, root, splits[folder], per_class, config.seed)
                  for folder, per_class in folders.items()}
    for epoch, path in found:  # a damaged checkpoint fails the stage before it has written anything
        if plan.get(epoch):
            read_checkpoint(path)
    written = []
    for epoch, path in found:
        if not plan.get(epoch):
            continue
        model, _ = load_generator(path, device)
        for folder, split in splits.items():
            cond, labels, rows = conditions[folder]
            out_dir = root / samples_dir(v.name, folder)
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
                    log.info("%s: %d %s images -> %s", v.name, len(images), folder, out_dir / f"{name}.npz")
    return written


def compare_samplers(variant: str, *, root: Path = Path("."), out: Path | None = None, per_class: int = 20,
                     guidance: float | None = None, seed: int = 0, batch_size: int = 64,
                     runs: tuple[tuple[str, int], ...] | None = None,
                     ddpm_variance: str = "fixed_small", device: torch.device | None = None,
                     image_size: int | None = None) -> dict:
    """Sample the same test conditions from the final checkpoint with each (sampler, steps) of `runs` (default:
    ddpm at every timestep of the model's schedule, the thesis' reference, then dpmpp-25; ddpm with the posterior
    variance `ddpm_variance`; `guidance` as `checkpoint_guidance` allows), for the adherence
    comparison (classify the `.npz` files the same way; `image_size`: the side the scoring classifier takes,
    checked before sampling). Writes `<out>/<sampler>-<steps>.npz` and `timing.json` (seconds per run, the first
    run's time over the last's, and the files) once every run is done; returns it."""
    v = Variant.parse(variant)
    device = device or select_device()
    epoch, path = _checkpoints(v, root)[-1]
    model, config = load_generator(path, device)
    if image_size not in (None, model.image_size):
        raise ValueError(f"--classifier scores {image_size}x{image_size} images, {path} draws "
                         f"{model.image_size}x{model.image_size}: use the classifier of its resolution")
    guidance = checkpoint_guidance(config, guidance, path)
    timesteps = model.schedule.timesteps
    runs = runs or (("ddpm", timesteps), ("dpmpp", min(25, timesteps)))
    for sampler, steps in runs:
        model.schedule.check_steps(steps, path, f"{sampler} steps")
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
