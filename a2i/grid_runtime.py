"""How long the thesis grid takes on one GPU at measured rates, and the hardware's limit for the same work.

`benchmarks/gpu_throughput.py` feeds it the rates it measures; the arithmetic is here, plain, so that it is tested
on the CPU. The grid is the thesis recipe (`a2i.thesis.RECIPE`): lengths x alignments cells plus the study
variants, each trained for its epochs on its length's train split, and sampled (DDPM-1000 with classifier-free
guidance, two U-Net forwards per step; one at guidance 1) and evaluated at every checkpoint as the sample stage does.
"""

from __future__ import annotations

from dataclasses import dataclass

from a2i.diffusion import checkpoint_schedule
from a2i.data.layout import INSTRUMENTS
from a2i.thesis import RECIPE
from a2i.variants import grid

# Dense bf16 tensor-core peaks in TFLOPS (NVIDIA's data sheets), by a name the device's contains: the first match
# counts, so the PCIe and NVL cards, clocked lower, come before the SXM ones (the H200 has the H100's chip).
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H200 NVL": 835.0, "H200": 989.0, "H100": 989.0,
                    "A100": 312.0}
PARTS = ("train", "sample", "evaluate")


@dataclass(frozen=True)
class Grid:
    models: int
    train_images: int  # images through a training step, all models and epochs
    sampled_images: int  # images drawn (and then evaluated), all models and checkpoints
    unguided_images: int = 0  # of those, drawn at guidance 1: one U-Net forward per step instead of two

    @property
    def guided_equivalent(self) -> float:
        """The sampling work in guided images (what a measured CFG sampling rate is a rate of)."""
        return self.sampled_images - self.unguided_images / 2


def thesis_grid(split_sizes: dict[int, dict[str, int]]) -> Grid:
    """The thesis recipe's grid over `split_sizes` ({length in s: {"train": n, "test": n}}, Table 4.1)."""
    recipe = {entry.key: entry.value for entry in RECIPE}
    study = {"alignment": recipe["study.alignment"], "length": recipe["study.length"],
             "variants": recipe["study.variants"]}
    variants = grid(recipe["lengths"], recipe["alignments"], study)
    missing = sorted({v.length for v in variants} - split_sizes.keys())
    if missing:
        raise ValueError(f"split_sizes has no lengths {missing} of the thesis grid")
    epochs = recipe["train.epochs"]
    checkpoints = len(checkpoint_schedule(epochs, recipe["train.checkpoint_every"]))
    # At every checkpoint: the test split, and for the cells (not the studies) the validation conditions that
    # select the checkpoint; at one checkpoint of the study cell, the test split again for each other CFG scale.
    validation = recipe["sample.val_per_class"] * len(INSTRUMENTS) * sum(v.study is None for v in variants)
    sweep = len(set(recipe["sample.cfg_scales"]) - {recipe["sample.guidance"]})
    study_test = split_sizes[recipe["study.length"]]["test"]
    sampled = (checkpoints * (sum(split_sizes[v.length]["test"] for v in variants) + validation)
               + sweep * study_test)
    # At guidance 1: the CFG control at every checkpoint, and the sweep's s = 1.
    unguided = (checkpoints * study_test * sum(v.study == "nocfg" for v in variants)
                + study_test * (1 in recipe["sample.cfg_scales"] and recipe["sample.guidance"] != 1))
    return Grid(len(variants), sum(epochs * split_sizes[v.length]["train"] for v in variants), sampled, unguided)


def _positive(values: dict[str, float], name: str) -> None:
    for part in PARTS:
        if not values.get(part, 0) > 0:
            raise ValueError(f"{name}['{part}'] must be a number > 0, got {values.get(part)}")


def projected_hours(work: Grid, rates: dict[str, float]) -> dict[str, float]:
    """Hours on one GPU of each part at `rates` (images/s: `train`, `sample` for DDPM-1000 with CFG, `evaluate`
    for the classifier and Inception), and their `total`."""
    _positive(rates, "rates")
    images = {"train": work.train_images, "sample": work.guided_equivalent, "evaluate": work.sampled_images}
    hours = {part: images[part] / rates[part] / 3600 for part in PARTS}
    return {**hours, "total": sum(hours.values())}


def hardware_limit_hours(work: Grid, flops_per_image: dict[str, float], peak_tflops: float) -> dict[str, float]:
    """Hours of the grid's U-Net work at the GPU's bf16 peak: `flops_per_image` of `train` (forward and backward)
    and `sample` (all forwards of one DDPM-1000 chain with CFG); evaluation is no U-Net work and not counted."""
    if not peak_tflops > 0:
        raise ValueError(f"peak_tflops must be a number > 0, got {peak_tflops}")
    images = {"train": work.train_images, "sample": work.guided_equivalent}
    hours = {part: images[part] * flops_per_image[part] / (peak_tflops * 1e12) / 3600 for part in images}
    return {**hours, "total": sum(hours.values())}


def utilisation(images_per_s: float, flops_per_image: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation: the FLOPs a path does per second over the GPU's peak."""
    return images_per_s * flops_per_image / (peak_tflops * 1e12)


def peak_bf16_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a device by its name (torch.cuda.get_device_name), None for one not in the table."""
    return next((peak for name, peak in PEAK_BF16_TFLOPS.items() if name in device_name), None)
