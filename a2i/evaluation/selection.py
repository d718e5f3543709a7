"""Model selection (ours, beyond the thesis): the best checkpoint of the main grid, chosen on validation.

The thesis picks its best model (Figure 5.3) by test adherence over the main grid at the main guidance; the
maximum over many noisy cells is biased upwards, so the headline is selected on validation and reported on
test. The report and the super-resolution stage (which upsamples the selected checkpoint's images) share it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def only_grid(frame: pd.DataFrame, column: str, expected: list[str], folder: Path) -> pd.DataFrame:
    """The rows of `frame` whose `column` is in `expected`. Metrics of other variants (left by an earlier run
    over a larger grid: DVC keeps outputs of stages no longer in the pipeline) are dropped; a missing one is an
    error."""
    present = set(frame[column]) if column in frame else set()  # no metrics at all: an empty frame
    missing = sorted(set(expected) - present)
    if missing:
        raise ValueError(f"{folder} has no metrics for {', '.join(missing)}: run their stages first")
    stale = sorted(present - set(expected))
    if stale:
        log.info("%s: leaving out %s (not in this experiment's grid)", folder, ", ".join(stale))
    return frame[frame[column].isin(expected)].reset_index(drop=True)


def main_grid(evaluations: pd.DataFrame, guidance: float) -> pd.DataFrame:
    """The concurrent experiments (thesis 4.3): plain variants at the main guidance, every checkpoint."""
    return evaluations[(evaluations["study"].fillna("") == "") & (evaluations["guidance"] == guidance)]


def best_row(evaluations: pd.DataFrame, column: str = "adherence") -> pd.Series:
    """The (variant, checkpoint, guidance) with the highest `column` (ties: earliest epoch, then variant order).
    Equal scores are compared to 9 decimals: a mean over seeds of equal hits can differ in its last bit."""
    ranked = evaluations.assign(_score=evaluations[column].round(9)).sort_values(
        ["_score", "epoch"], ascending=[False, True], kind="stable")
    return ranked.drop(columns="_score").iloc[0]


def _key(row: pd.Series) -> tuple:
    return row["variant"], int(row["epoch"]), float(row["guidance"])


def select_best(test: pd.DataFrame, val: pd.DataFrame, guidance: float) -> tuple[pd.Series, float, pd.Series]:
    """(the main-grid checkpoint with the best validation adherence, as its test row; that validation adherence;
    the thesis-style best on test itself)."""
    main_test, main_val = main_grid(test, guidance), main_grid(val, guidance)
    without = sorted(set(main_test["variant"]) - set(main_val["variant"]))
    if main_val.empty or without:
        of = f" for {', '.join(without)}" if without and not main_val.empty else ""
        raise ValueError(f"no validation metrics of the main grid{of} (metrics/evaluate/<variant>/val): run the "
                         "sample and evaluate stages of this pipeline version")
    chosen = best_row(main_val)
    selected = main_test[[_key(row) == _key(chosen) for _, row in main_test.iterrows()]]
    if selected.empty:
        raise ValueError(f"{chosen['variant']} epoch {chosen['epoch']} has validation but no test metrics")
    return selected.iloc[0], float(chosen["adherence"]), best_row(main_test)
