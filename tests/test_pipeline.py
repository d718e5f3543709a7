"""The README's recipes on a copy of this repository, with the `micro` profile (CPU, a couple of minutes).

`dvc exp run -S ...` composes conf/ and runs every stage; a second `dvc repro` does nothing; two queued
experiments run through `dvc queue` and `dvc metrics diff` tells them apart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from project_copy import run

pytestmark = pytest.mark.slow


def wait_for_queue(project: Path, deadline_s: float) -> str:
    """`dvc queue status` once nothing is queued or running any more."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        status = run(project, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            return status
        time.sleep(5)
    raise AssertionError(f"queue still busy after {deadline_s} s:\n{status}")


def test_exp_run_then_noop_repro(project):
    run(project, "dvc", "exp", "run", "-S", "profile=micro")
    summary = json.loads((project / "metrics" / "summary.json").read_text())
    assert {"classifier_test_accuracy", "best_adherence", "best_variant", "feature_extractor"} <= set(summary)
    assert 0 <= summary["best_adherence"] <= 1
    for name in ("table_4_1", "table_5_1", "table_5_2", "table_5_4", "table_5_5", "table_5_9"):
        assert (project / "report" / f"{name}.csv").is_file(), name
    assert (project / "report" / "README.md").read_text().startswith("# a2i report")
    # dvc repro never recomposes: params.yaml now holds the micro composition and nothing is stale.
    output = run(project, "dvc", "repro")
    assert "Running stage" not in output, output


def test_queued_experiments_and_metrics_diff(project):
    for seed in (1, 2):
        run(project, "dvc", "exp", "run", "--queue", "--name", f"seed{seed}", "-S", "profile=micro",
            "-S", f"sample.seed={seed}")
    run(project, "dvc", "queue", "start", "-j", "1")
    status = wait_for_queue(project, deadline_s=900)
    assert status.count("Success") >= 2, status
    diff = run(project, "dvc", "metrics", "diff", "seed1", "seed2")
    assert "metrics/summary.json" in diff or "metrics/evaluate" in diff, diff
