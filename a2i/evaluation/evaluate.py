"""The `evaluate` stage (thesis 5.2.2, 5.2.3): every (checkpoint, guidance) of a variant's generated test images.

Metrics per (variant, epoch, guidance), one flat JSON each, seeds aggregated as mean and sd:
- conditional adherence: accuracy of the frozen instrument classifier against the instrument of the
  conditioning audio, per instrument too, and the confusion matrix (rows = conditioning instrument, Fig. 5.3);
- FID of the generated images against the real train and the real test images (Tables 5.4/5.5) with
  pytorch-fid's InceptionV3 when its weights are available; otherwise `fid_classifier`, the same Frechet
  distance in the classifier's penultimate feature space (never called FID). `feature_extractor` says which;
- bootstrap 95% intervals of both (see `a2i.evaluation.stats`).
Real-image statistics are computed once per split and feature extractor and cached by content.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from a2i.data.layout import INSTRUMENTS
from a2i.code import code_digest
from a2i.evaluation import FRECHET_PREFIX, stats
from a2i.evaluation.classifier import ClassifierFeatures, load_classifier, predict, real_split
from a2i.evaluation.fid import FrechetReference, InceptionFeatures, resolve_inception_weights
from a2i.io import atomic_path, load_npz, read_json, save_npz, sha256_file, write_csv, write_json
from a2i.variants import (HR_IMAGES, IMAGES, UPSAMPLED_CHECKPOINT, UPSAMPLERS, Variant, evaluation_name,
                          parse_sample_name, upsampled_dir)

log = logging.getLogger(__name__)

REFERENCE_SPLITS = ("train", "test")
# Frechet distances are recorded to 3 decimals, far below their sampling error: MKL's eigensolvers differ between
# CPUs from about the ninth digit, and the metrics files should be the same bytes on every CPU
# (benchmarks/RESULTS.md, "2026-12-01, eleventh session").
FRECHET_DECIMALS = 3


# ------------------------------------------------------------------------------------------ generated samples

@dataclass(frozen=True)
class SampleFile:
    epoch: int
    guidance: float
    seed: int
    path: Path


def discover_samples(samples_dir: str | Path) -> dict[tuple[int, float], list[SampleFile]]:
    """The `<sample_name>.npz` files of a variant, grouped by (epoch, guidance), seeds in order."""
    samples_dir = Path(samples_dir)
    groups: dict[tuple[int, float], list[SampleFile]] = defaultdict(list)
    for path in sorted(samples_dir.glob("*.npz")):
        parsed = parse_sample_name(path.stem)
        if parsed is None:
            raise ValueError(f"{path}: not named like a2i.variants.sample_name (epoch_EEE_gG_sS.npz)")
        sample = SampleFile(*parsed, path)
        groups[(sample.epoch, sample.guidance)].append(sample)
    if not groups:
        raise ValueError(f"{samples_dir} holds no generated samples (epoch_EEE_gG_sS.npz; run the sample stage)")
    return {key: sorted(files, key=lambda f: f.seed) for key, files in sorted(groups.items())}


def load_samples(path: Path, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """`images` uint8 [n, S, S, 3] (S = `image_size`, the classifier's) and `labels` int64 [n] of a samples
    file, validated."""
    images, labels = load_npz(path, "images", "labels")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (image_size, image_size, 3):
        raise ValueError(f"{path}: images must be uint8 [n, {image_size}, {image_size}, 3] like the classifier's, "
                         f"got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: labels must be integers [{len(images)}], got {labels.dtype} {labels.shape}")
    if len(images) < 2:
        raise ValueError(f"{path}: at least 2 images are needed, got {len(images)}")
    if labels.min() < 0 or labels.max() >= len(INSTRUMENTS):
        raise ValueError(f"{path}: labels outside 0..{len(INSTRUMENTS) - 1}")
    return images, labels.astype(np.int64)


# ------------------------------------------------------------------------------------------ references

def feature_space(fid_weights: str | None, classifier, classifier_path: str | Path, batch_size: int, device: str,
                  allow_fid_classifier: bool = True):
    """(extractor, cache identity, metric prefix): Inception pool3 when weights exist, else the classifier's
    penultimate layer, whose distance is reported as `fid_classifier` - or, without `allow_fid_classifier` (the
    thesis recipe), an error before anything is computed."""
    # Only the file params.yaml names, which DVC tracks: pytorch-fid's cache in $TORCH_HOME would make the metric
    # depend on the machine.
    weights = None if fid_weights is None else resolve_inception_weights(fid_weights)
    if weights is None and not allow_fid_classifier:
        raise ValueError(f"evaluate.fid_weights={fid_weights!r}: no Inception weights for FID (thesis 5.2.3); add "
                         "`inception` to download.items and set evaluate.fid_weights to the downloaded file, or set "
                         "evaluate.allow_fid_classifier=true to report fid_classifier instead")
    if weights is None:
        log.info("no Inception weights: reporting fid_classifier (classifier penultimate features), not FID")
        extractor = ClassifierFeatures(classifier, batch_size, device)
        return extractor, sha256_file(classifier_path), FRECHET_PREFIX[extractor.name]
    log.info("FID with pytorch-fid's InceptionV3, weights %s", weights)
    extractor = InceptionFeatures(weights, batch_size, device)
    return extractor, extractor.weights_sha256, FRECHET_PREFIX[extractor.name]


def stats_cache_dir() -> Path:
    """Content-addressed cache of real-image statistics, shared by all variants and experiments."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "a2i" / "fid_stats"


def reference(images: np.ndarray, extractor, identity: str, cache: Path) -> FrechetReference:
    """Reference statistics of real images, from the cache when the same images and extractor were seen."""
    digest = hashlib.sha256(identity.encode() + np.ascontiguousarray(images).tobytes()).hexdigest()[:24]
    path = cache / f"{extractor.name}_{digest}.npz"
    if path.is_file():
        try:
            mu, sigma, root = load_npz(path, "mu", "sigma", "root")
            return FrechetReference(mu, sigma, torch.from_numpy(root))
        except ValueError as error:  # a cache, not an input: computed again and rewritten
            log.warning("ignoring the damaged statistics cache: %s", error)
    fresh = FrechetReference.from_features(extractor(images))
    # The root too: cached or not, the same numbers come out to the last bit.
    save_npz(path, mu=fresh.mu.numpy(), sigma=fresh.sigma.numpy(), root=fresh.root.numpy())
    return fresh


def real_references(prepared: str | Path, images_file: str, extractor, identity: str, batch_size: int,
                    device: str) -> tuple[dict[str, FrechetReference], dict[str, int]]:
    """The Frechet references of the real train and test images of `images_file`, and their sizes."""
    references, n_real = {}, {}
    # Batch size and device change the features' last bits, and the code computes them (the cache lies outside
    # DVC, which re-runs the stage on a code change): all part of the key.
    key = f"{identity}|batch_size={batch_size}|device={device}|code={code_digest(__file__)}"
    for split in REFERENCE_SPLITS:
        real = real_split(prepared, split, images_file)
        references[split] = reference(real.images, extractor, key, stats_cache_dir())
        n_real[f"n_real_{split}"] = len(real.labels)
    return references, n_real


# ------------------------------------------------------------------------------------------ one group

@dataclass
class GroupResult:
    metrics: dict
    actual: np.ndarray
    predicted: np.ndarray


def evaluate_group(files: list[SampleFile], classifier, extractor, references: dict[str, FrechetReference],
                   prefix: str, bootstrap: int, seed: int, batch_size: int, device: str) -> GroupResult:
    """Adherence, per-instrument accuracy, confusion and Frechet distances of one (epoch, guidance), all seeds.

    The seeds share their test conditions, so one bootstrap resample of the conditions serves every seed: the
    interval is that of the seeds' mean, and does not narrow as seeds repeat the same conditions."""
    group = files[0].path.parent / evaluation_name(files[0].epoch, files[0].guidance)
    per_seed: dict[str, list[float]] = defaultdict(list)
    replicates: dict[str, list[np.ndarray]] = defaultdict(list)
    actual, predicted, counts = [], [], None
    for sample in files:
        images, labels = load_samples(sample.path, classifier.image_size)
        if counts is None:
            rng = np.random.default_rng([seed, sample.epoch, round(sample.guidance * 1000), *(f.seed for f in files)])
            counts = stats.bootstrap_counts(labels, bootstrap, rng)
        elif not np.array_equal(labels, actual[0]):
            raise ValueError(f"seeds of {group} differ in their conditions ({sample.path} against seed "
                             f"{files[0].seed}): they must condition on the same test audio")
        guesses, classifier_features = predict(classifier, images, batch_size, device)
        if references:
            features = classifier_features if isinstance(extractor, ClassifierFeatures) else extractor(images)
        correct = (guesses == labels).astype(np.float64)
        per_seed["adherence"].append(correct.mean())
        replicates["adherence"].append(counts @ correct / len(images))
        for split, ref in references.items():
            per_seed[f"{prefix}_{split}"].append(round(ref.distance(features), FRECHET_DECIMALS))
            replicates[f"{prefix}_{split}"].append(np.round(ref.resampled(features, counts), FRECHET_DECIMALS))
        actual.append(labels)
        predicted.append(guesses)
    metrics: dict = {"n_seeds": len(files), "n_images": len(actual[0])}
    for name, values in per_seed.items():
        metrics[name], metrics[f"{name}_sd"] = stats.mean_sd(values)
        low, high = stats.percentile_interval(np.mean(replicates[name], axis=0))
        metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = low, high
    actual, predicted = np.concatenate(actual), np.concatenate(predicted)
    proportions = stats.row_proportions(stats.confusion_counts(actual, predicted, len(INSTRUMENTS)))
    for i, instrument in enumerate(INSTRUMENTS):
        metrics[f"acc_{instrument}"] = None if np.isnan(proportions[i, i]) else float(proportions[i, i])
    stats.check_metrics(metrics, group)
    return GroupResult(metrics, actual, predicted)


def paired_adherence(sample_files: dict[str, Path], classifier, bootstrap: int, seed: int = 0,
                     device: str = "cpu") -> dict[str, dict]:
    """Adherence of sample files drawn for the same test conditions (e.g. two samplers) with 95% intervals, and
    each file's difference to the first, bootstrapped over the shared conditions (paired: one resample for all)."""
    correct, first_labels = {}, None
    for name, path in sample_files.items():
        images, labels = load_samples(Path(path), classifier.image_size)
        if first_labels is not None and not np.array_equal(labels, first_labels):
            raise ValueError(f"{path}: not conditioned on the same test samples as the first file")
        first_labels = labels
        correct[name] = (predict(classifier, images, device=device)[0] == labels).astype(np.float64)
    n = len(first_labels)
    counts = stats.bootstrap_counts(first_labels, bootstrap, np.random.default_rng(seed))
    first = next(iter(correct))
    result = {}
    for name, hits in correct.items():
        low, high = stats.percentile_interval(counts @ hits / n)
        result[name] = {"adherence": float(hits.mean()), "ci_low": low, "ci_high": high, "n": n}
        if name != first:
            low, high = stats.percentile_interval(counts @ (hits - correct[first]) / n)
            result[name].update({f"minus_{first}": float(hits.mean() - correct[first].mean()),
                                 f"minus_{first}_ci_low": low, f"minus_{first}_ci_high": high})
    return result


# ------------------------------------------------------------------------------------------ the stage

def evaluate_variant(variant: str, prepared: str | Path, samples_dir: str | Path, classifier_path: str | Path,
                     metrics_dir: str | Path, plots_dir: str | Path, fid_weights: str | None, bootstrap: int,
                     batch_size: int, seed: int, allow_fid_classifier: bool = True, device: str = "cpu",
                     empty_ok: bool = False) -> list[dict]:
    """Evaluate every (checkpoint, guidance) of `variant`; write `<metrics_dir>/<group>.json` and the confusion
    matrix `<plots_dir>/<group>.csv|.png` for each, all at the end (a failure leaves no partial output).
    Validation samples (`<samples_dir>/val`, the main grid's) get their adherence in `<metrics_dir>/val/`: what
    the report selects the best checkpoint on. `empty_ok`: a folder without samples (a CFG sweep of the main
    guidance alone) leaves both output folders empty."""
    parsed = Variant.parse(variant)
    if not Path(samples_dir).is_dir():
        raise ValueError(f"{samples_dir} not found (run the sample stage that writes it)")
    if empty_ok and not any(Path(samples_dir).glob("*.npz")):
        for folder in (metrics_dir, plots_dir):
            Path(folder).mkdir(parents=True, exist_ok=True)
        log.info("%s: no samples in %s, nothing to evaluate", parsed.name, samples_dir)
        return []
    groups = discover_samples(samples_dir)
    val_dir = Path(samples_dir) / "val"
    val_groups = discover_samples(val_dir) if val_dir.is_dir() else {}
    classifier = load_classifier(classifier_path, device)
    extractor, identity, prefix = feature_space(fid_weights, classifier, classifier_path, batch_size, device,
                                                allow_fid_classifier)
    references, n_real = real_references(prepared, IMAGES, extractor, identity, batch_size, device)
    identification = {"variant": parsed.name, "alignment": parsed.alignment, "length_s": parsed.length,
                      "study": parsed.study or ""}
    results = {}
    for split, split_groups, split_references in (("test", groups, references), ("val", val_groups, {})):
        for (epoch, guidance), files in split_groups.items():
            result = evaluate_group(files, classifier, extractor, split_references, prefix, bootstrap, seed,
                                    batch_size, device)
            result.metrics = {**identification, "split": split, "epoch": epoch, "guidance": guidance,
                              **result.metrics, "feature_extractor": extractor.name, **n_real, "bootstrap": bootstrap}
            log.info("%s %s %s: adherence %.4f", parsed.name, split, evaluation_name(epoch, guidance),
                     result.metrics["adherence"])
            results[(split, evaluation_name(epoch, guidance))] = result
    for (split, name), result in results.items():
        if split == "val":
            write_json(Path(metrics_dir) / "val" / f"{name}.json", result.metrics)
            continue
        title = (f"{parsed.name} {name}: adherence {result.metrics['adherence']:.3f} "
                 f"(n={result.metrics['n_images']}x{result.metrics['n_seeds']})")
        write_confusion(Path(plots_dir) / f"{name}.csv", Path(plots_dir) / f"{name}.png", result.actual,
                        result.predicted, title)
        write_json(Path(metrics_dir) / f"{name}.json", result.metrics)
    return [result.metrics for result in results.values()]


def evaluate_upsampled(prepared: str | Path, root: str | Path, classifier_path: str | Path,
                       metrics_dir: str | Path, fid_weights: str | None, bootstrap: int, batch_size: int, seed: int,
                       allow_fid_classifier: bool = True, device: str = "cpu") -> dict[str, dict]:
    """The `evaluate_sr` stage: adherence (the classifier trained at the high resolution) and Frechet distances to
    the real high-resolution train and test crops of each upsampling method's images (`upsampled_dir(method)`
    under `root`), with the same bootstrap as `evaluate_variant`; `<metrics_dir>/<method>.json` each, written at
    the end."""
    selected = _selected_checkpoint(Path(root) / UPSAMPLED_CHECKPOINT)
    classifier = load_classifier(classifier_path, device)
    extractor, identity, prefix = feature_space(fid_weights, classifier, classifier_path, batch_size, device,
                                                allow_fid_classifier)
    references, n_real = real_references(prepared, HR_IMAGES, extractor, identity, batch_size, device)
    results, conditions = {}, None
    for method in UPSAMPLERS:
        folder = Path(root) / upsampled_dir(method)
        groups = discover_samples(folder)
        if len(groups) != 1:
            raise ValueError(f"{folder}: expected the images of one checkpoint, found {len(groups)}")
        [(checkpoint, files)] = groups.items()
        if checkpoint != (selected["epoch"], selected["guidance"]):
            raise ValueError(f"{folder} holds the images of epoch {checkpoint[0]} at guidance {checkpoint[1]:g}, "
                             f"not those of the selected checkpoint in {Path(root) / UPSAMPLED_CHECKPOINT} "
                             f"(epoch {selected['epoch']}, guidance {selected['guidance']:g}): rerun sample_sr")
        result = evaluate_group(files, classifier, extractor, references, prefix, bootstrap, seed, batch_size, device)
        # The methods' intervals are compared side by side: they must score the same conditions.
        conditions = result.actual if conditions is None else conditions
        if not np.array_equal(result.actual, conditions):
            raise ValueError(f"{folder}: not conditioned on the same test samples as {UPSAMPLERS[0]}'s images")
        results[method] = {"method": method, **selected, "resolution": classifier.image_size, **result.metrics,
                           "feature_extractor": extractor.name, **n_real, "bootstrap": bootstrap}
        log.info("%s upsampling of %s: adherence %.4f, %s_test %.2f", method, selected["variant"],
                 result.metrics["adherence"], prefix, result.metrics[f"{prefix}_test"])
    for method, metrics in results.items():
        write_json(Path(metrics_dir) / f"{method}.json", metrics)
    return results


def _selected_checkpoint(path: Path) -> dict:
    """The checkpoint `sample_sr` upsampled (variant, epoch, guidance), as it recorded it."""
    return read_json(path, "variant", "epoch", "guidance", hint="run the sample_sr stage first")


def write_confusion(csv_path: Path, png_path: Path, actual: np.ndarray, predicted: np.ndarray, title: str) -> None:
    """One `actual,predicted` row per image (DVC's confusion_normalized template, x: predicted, y: actual) and
    a PNG of the row proportions (rows = conditioning instrument)."""
    names = np.array(INSTRUMENTS)
    write_csv(csv_path, pd.DataFrame({"actual": names[actual], "predicted": names[predicted]}))
    plot_confusion(png_path, stats.row_proportions(stats.confusion_counts(actual, predicted, len(INSTRUMENTS))), title)


def plot_confusion(path: Path, proportions: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 7))
    image = axes.imshow(np.nan_to_num(proportions), vmin=0.0, vmax=1.0, cmap="Blues")
    for (row, col), value in np.ndenumerate(proportions):
        if not np.isnan(value) and value >= 0.005:
            axes.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if value > 0.5 else "black")
    axes.set_xticks(range(len(INSTRUMENTS)), INSTRUMENTS, rotation=60, ha="right")
    axes.set_yticks(range(len(INSTRUMENTS)), INSTRUMENTS)
    axes.set_xlabel("classifier prediction")
    axes.set_ylabel("conditioning instrument")
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
