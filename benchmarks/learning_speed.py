"""How fast the tiny U-Net learns to show the right instrument: adherence after N training steps.

The default run's image size and loss weighting were chosen with this script (benchmarks/RESULTS.md, "Learning
speed of the tiny U-Net"). In a scratch root that holds a finished run's embeddings and its prepared images,
area-downsampled to `--image-size`, it runs the stages' own functions: `train` (one checkpoint every `--steps`
steps), `classify` on the real images of that size, and `sample` at every checkpoint (`--per-class` test
conditions, as many validation ones for a main-grid variant, the main guidance only), then scores the samples
with that classifier; `--seed` sets the training seed. `--class-mean-embeddings` conditions on the mean training
embedding of each sample's instrument instead of its own embedding: conditions that carry the instrument and
nothing else, which splits a shortfall between the embeddings and the U-Net.

Run from the repository root after `dvc repro` (it reads params.yaml's `train`, `classify` and `sample` sections
and overrides what the options name):

    python benchmarks/learning_speed.py --variant text-2s --image-size 32 --loss-weighting v --steps 120 --checkpoints 4
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from a2i.data.layout import SPLITS
from a2i.data.prepare import index_name
from a2i.diffusion.sample import sample_variant
from a2i.diffusion.train import train
from a2i.evaluation.classifier import classify, load_classifier, predict
from a2i.evaluation.evaluate import discover_samples, load_samples
from a2i.params import load_section
from a2i.variants import CLASSIFIER, EMBEDDINGS, METRICS, PREPARED, Variant, samples_dir


def class_mean_embeddings(source: Path, target: Path) -> None:
    """`source`'s embedding folder with every row replaced by the mean training embedding of its instrument."""
    train = np.load(source / "train.npy")
    labels = {split: pd.read_csv(source / f"{split}.csv")["label"].to_numpy() for split in SPLITS}
    means = {label: train[labels["train"] == label].mean(0) for label in np.unique(labels["train"])}
    target.mkdir(parents=True)
    for split in SPLITS:
        np.save(target / f"{split}.npy", np.stack([means[label] for label in labels[split]]).astype(train.dtype))
        shutil.copy(source / f"{split}.csv", target / f"{split}.csv")


def scratch_root(source: Path, work: Path, image_size: int, variant: str, class_means: bool) -> Path:
    """`work` with `source`'s prepared data (images area-downsampled to `image_size`) and embeddings (with
    `class_means`, `variant`'s replaced by `class_mean_embeddings`)."""
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
    embeddings = EMBEDDINGS / Variant.parse(variant).embedding
    if class_means:
        class_mean_embeddings(source / embeddings, work / embeddings)
    else:
        (work / embeddings).parent.mkdir(parents=True)
        (work / embeddings).symlink_to((source / embeddings).resolve())
    return work


def adherence_by_checkpoint(variant: str, root: Path, per_class: int) -> dict[int, dict[str, float]]:
    """Adherence per checkpoint epoch and split: test, and validation where the sample stage draws it (main-grid
    variants), `per_class` conditions per instrument in each."""
    classify(root / PREPARED, root / CLASSIFIER, root / METRICS / "classifier.json", **load_section("classify"))
    classifier = load_classifier(root / CLASSIFIER)
    params = {**load_section("sample"), "per_class": per_class, "val_per_class": per_class, "seeds": [0]}
    sample_variant(variant, params, root, torch.device("cpu"))
    scores: dict[int, dict[str, float]] = {}
    for split in ("val", "test"):
        if not (root / samples_dir(variant, split)).is_dir():
            continue
        for (epoch, _), (sample,) in discover_samples(root / samples_dir(variant, split)).items():
            images, labels = load_samples(sample.path, classifier.image_size)
            scores.setdefault(epoch, {})[split] = float((predict(classifier, images)[0] == labels).mean())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="text-2s")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--loss-weighting", choices=("eps", "v"), default="v")
    parser.add_argument("--steps", type=int, default=120, help="training steps between checkpoints")
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=4,
                        help="test (and validation) conditions per instrument")
    parser.add_argument("--seed", type=int, help="training seed (default: params.yaml's train.seed)")
    parser.add_argument("--class-mean-embeddings", action="store_true",
                        help="condition on each instrument's mean training embedding (see the module docstring)")
    args = parser.parse_args()
    params = {**load_section("train"), "epochs": args.checkpoints, "max_steps_per_epoch": args.steps,
              "checkpoint_every": 1, "loss_weighting": args.loss_weighting}
    if args.seed is not None:
        params["seed"] = args.seed
    # An epoch ends after the train split's last full batch, whatever `max_steps_per_epoch` asks for.
    samples = len(pd.read_csv(PREPARED / index_name(Variant.parse(args.variant).length, "train")))
    batches = samples // params["batch_size"]
    if args.steps > batches:
        parser.error(f"--steps {args.steps} exceeds one epoch of {args.variant} ({batches} batches of "
                     f"{params['batch_size']}): checkpoints are one epoch apart")
    with tempfile.TemporaryDirectory() as work:
        root = scratch_root(Path("."), Path(work), args.image_size, args.variant, args.class_mean_embeddings)
        start = time.perf_counter()
        train(args.variant, params, root)
        seconds = time.perf_counter() - start
        conditions = ", class-mean embeddings" if args.class_mean_embeddings else ""
        print(f"{args.variant}{conditions}, {args.image_size}x{args.image_size}, {args.loss_weighting} weighting, "
              f"batch {params['batch_size']}, lr {params['lr']}: {seconds:.0f} s of training (with per-epoch "
              f"validation and previews)")
        for epoch, scores in adherence_by_checkpoint(args.variant, root, args.per_class).items():
            print(f"  {epoch * args.steps:5d} steps: adherence " +
                  ", ".join(f"{split} {score:.3f}" for split, score in scores.items()))


if __name__ == "__main__":
    main()
