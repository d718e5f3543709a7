"""How fast the tiny U-Net learns to show the right instrument: adherence after N training steps.

The tiny profile's image size and loss weighting were chosen with this script (benchmarks/RESULTS.md, "Learning
speed of the tiny U-Net"). It trains one variant with the `train` stage's own code in a scratch root that holds
a finished run's embeddings and its prepared images, area-downsampled to `--image-size`, then samples every
checkpoint like the `sample` stage (`per_class` test conditions, DPM-Solver++ 25, guidance 3) and scores the
images with an instrument classifier trained like the `classify` stage on real images of the same size.

Run from the repository root after `dvc repro` (it reads params.yaml's `train` section and overrides what the
options name):

    python benchmarks/learning_speed.py --variant text-2s --image-size 32 --loss-weighting v --steps 120 --checkpoints 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from a2i.diffusion.sample import checkpoints, generate_images, held_out_conditions, load_generator
from a2i.diffusion.schedule import Schedule
from a2i.diffusion.train import train
from a2i.evaluation.classifier import predict, real_split, train_classifier
from a2i.params import load_section
from a2i.variants import PREPARED, Variant, diffusion_dir


def scratch_root(source: Path, work: Path, image_size: int) -> Path:
    """`work` with `source`'s prepared data (images area-downsampled to `image_size`) and embeddings."""
    prepared = work / PREPARED
    prepared.mkdir(parents=True)
    for path in (source / PREPARED).iterdir():
        if path.name != "images.npy":
            (prepared / path.name).symlink_to(path.resolve())
    images = torch.from_numpy(np.load(source / PREPARED / "images.npy")).permute(0, 3, 1, 2).float()
    if images.shape[-1] % image_size:
        raise ValueError(f"--image-size {image_size} does not divide the prepared side {images.shape[-1]}")
    small = F.avg_pool2d(images, images.shape[-1] // image_size).round().to(torch.uint8)
    np.save(prepared / "images.npy", small.permute(0, 2, 3, 1).numpy())
    (work / "data" / "embeddings").symlink_to((source / "data" / "embeddings").resolve())
    return work


def adherence_by_checkpoint(variant: str, root: Path, per_class: int) -> list[tuple[int, float]]:
    splits = {split: real_split(root / PREPARED, split) for split in ("train", "val")}
    classifier = train_classifier(splits["train"], splits["val"], epochs=2, batch_size=64, lr=1e-3, seed=0,
                                  noise_std=0.3).model
    cond, labels, _ = held_out_conditions(Variant.parse(variant), root, per_class, seed=0)
    scores = []
    for epoch, path in checkpoints(root / diffusion_dir(variant)):
        model, config = load_generator(path)
        images = generate_images(model, cond, sampler="dpmpp", steps=25, guidance=3.0, seed=0,
                                 schedule=Schedule(**config["model"]["schedule"]), batch_size=len(cond),
                                 device=torch.device("cpu"))
        scores.append((epoch, float((predict(classifier, images)[0] == labels).mean())))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="text-2s")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--loss-weighting", choices=("eps", "v"), default="v")
    parser.add_argument("--steps", type=int, default=120, help="training steps between checkpoints")
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=4, help="test conditions per instrument")
    args = parser.parse_args()
    params = {**load_section("train"), "epochs": args.checkpoints, "max_steps_per_epoch": args.steps,
              "checkpoint_every": 1, "loss_weighting": args.loss_weighting}
    with tempfile.TemporaryDirectory() as work:
        root = scratch_root(Path("."), Path(work), args.image_size)
        start = time.perf_counter()
        train(args.variant, params, root)
        seconds = time.perf_counter() - start
        print(f"{args.variant}, {args.image_size}x{args.image_size}, {args.loss_weighting} weighting, batch "
              f"{params['batch_size']}, lr {params['lr']}: {seconds:.0f} s of training (with per-epoch validation "
              f"and previews)")
        for epoch, score in adherence_by_checkpoint(args.variant, root, args.per_class):
            print(f"  {epoch * args.steps:5d} steps: adherence {score:.3f}")


if __name__ == "__main__":
    main()
