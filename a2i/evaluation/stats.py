"""The statistics the thesis could not afford: bootstrap intervals, spread over sampling seeds, confusion.

Bootstrap: the generated set is resampled with replacement within each instrument (the conditions are drawn per
instrument, so each resample keeps their class mix; the real reference sets stay fixed); every metric of one
replicate uses the same resample, and with several seeds each replicate averages one resample per seed, so the
interval is that of the reported mean. Intervals are percentile intervals, conditional on this test set: its
L-second windows overlap their neighbours on a 100 ms hop and come from one or two performances per instrument,
so they say how precisely this set is scored, not how a model would score on other performances. Note that FID
is biased upward at small n and a resample with repeated images has less diversity, so FID replicates sit above
the point estimate: the FID interval describes the spread, and may exclude the point estimate itself.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from a2i.evaluation import FRECHET_PREFIX
from a2i.io import read_json

LEVEL = 0.95


def bootstrap_counts(labels: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """[replicates, n]: how often each of the n items is drawn in each stratified resample: the items of each label
    drawn with replacement as often as that label occurs."""
    if replicates < 1:
        raise ValueError(f"evaluate.bootstrap must be >= 1, got {replicates}")
    labels = np.asarray(labels)
    counts = np.zeros((replicates, len(labels)), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        counts[:, members] = rng.multinomial(len(members), np.full(len(members), 1.0 / len(members)),
                                             size=replicates)
    return counts


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(np.asarray(replicates, dtype=np.float64), [tail, 100.0 - tail])
    return float(low), float(high)


def mean_sd(values) -> tuple[float, float | None]:
    """Mean and sample standard deviation over seeds; the deviation of a single seed is undefined (None)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)


def confusion_counts(actual: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """[classes, classes] counts, rows = actual (conditioning) class, columns = predicted class."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(actual), np.asarray(predicted)), 1)
    return counts


def row_proportions(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total; a class that never occurs gets a row of NaN."""
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)


def check_metrics(metrics: dict, source: str | Path) -> None:
    """ValueError naming `source` when `metrics` (one evaluate row) hold what no correct evaluation gives: a
    number that is not finite, a proportion outside [0, 1], a negative Frechet distance or deviation, or an
    interval whose low end lies above its high end. Broken images score like that; they must not be reported.
    (A Frechet interval that excludes its point estimate is possible: see the module docstring.)"""
    problems = [f"{key}={value}: {why}" for key, value in metrics.items() if (why := _impossible(key, value))]
    for name in (key.removesuffix("_ci_low") for key in metrics if key.endswith("_ci_low")):
        low, high = metrics[f"{name}_ci_low"], metrics.get(f"{name}_ci_high")
        if _number(low) and _number(high) and low > high:  # False for NaN, reported above
            problems.append(f"{name}_ci_low={low} > {name}_ci_high={high}")
    if problems:
        raise ValueError(f"{source}: impossible metrics ({'; '.join(problems)}): its samples or their evaluation "
                         "are broken")


def incomplete(metrics: dict) -> list[str]:
    """What an evaluate metrics file lacks of what every evaluation measures: adherence, and on the test split the
    Frechet distances to the real train and test images in its feature space, each with its interval. (The
    per-class accuracies are null for a class without samples, the deviations over seeds for one seed.)"""
    extractor = metrics.get("feature_extractor")
    if extractor not in FRECHET_PREFIX:
        return [f"feature_extractor={extractor!r}: not one of {', '.join(FRECHET_PREFIX)}"]
    prefix = FRECHET_PREFIX[extractor]
    names = ["adherence"] + ([] if metrics.get("split") == "val" else [f"{prefix}_train", f"{prefix}_test"])
    keys = [f"{name}{end}" for name in names for end in ("", "_ci_low", "_ci_high")]
    return [f"{key}={metrics.get(key)}: not a number" for key in keys if not _number(metrics.get(key))]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _impossible(key: str, value) -> str | None:
    if not _number(value):
        return None
    if not math.isfinite(value):
        return "not finite"
    if key.startswith(("adherence", "acc_")) and not key.endswith("_sd") and not 0 <= value <= 1:
        return "a proportion outside [0, 1]"
    if (key.startswith("fid") or key.endswith("_sd")) and value < -1e-6:  # tolerance: rounding of a zero distance
        return "negative"
    return None


def collect_metrics(*metrics_dirs: str | Path) -> pd.DataFrame:
    """Every evaluate metrics JSON under each of `metrics_dirs` (e.g. metrics/evaluate), one row each, sorted by
    (variant, epoch, guidance)."""
    rows = []
    for path in [path for folder in metrics_dirs for path in sorted(Path(folder).rglob("*.json"))]:
        row = read_json(path)
        if not {"variant", "epoch", "guidance"} <= row.keys():
            raise ValueError(f"{path} is not an evaluate metrics file (variant, epoch, guidance)")
        check_metrics(row, path)
        if missing := incomplete(row):
            raise ValueError(f"{path}: incomplete metrics ({'; '.join(missing)}): run its evaluate stage again")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["variant", "epoch", "guidance"], kind="stable").reset_index(drop=True)
