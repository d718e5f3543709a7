"""The README's recipes on a copy of this repository, with the `micro` profile (CPU, a couple of minutes).

`dvc exp run -S ...` composes conf/ and runs every stage; a second `dvc repro` does nothing; another CFG sweep
re-runs only its own stages and the report; two queued experiments run through `dvc queue` and `dvc metrics diff`
tells them apart; a bad parameter fails in seconds; the local-data recipe of "Using the real Sub-URMP" runs through `prepare` on a small Sub-URMP tree placed by hand.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from project_copy import attempt, copy_project, run

from a2i.data.synthetic import synthesize

pytestmark = pytest.mark.slow


def wait_for_queue(project: Path, deadline_s: float) -> str:
    """`dvc queue status` once nothing is queued or running any more. DVC's worker can stop with experiments
    still queued (treeverse/dvc#10562): the queue is then started again, as the README tells its users."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        status = run(project, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            return status
        if "Running" not in status and "0 active, 0 idle" in status:
            run(project, "dvc", "queue", "start", "-j", "1")
        time.sleep(5)
    raise AssertionError(f"queue still busy after {deadline_s} s:\n{status}")


def test_a_bad_parameter_fails_before_any_work(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("bad") / "a2i")
    # The `check` stage runs first (9.5 s on 2 busy cores, benchmarks/RESULTS.md): no other stage may run.
    result = attempt(project, "dvc", "exp", "run", "-S", "profile=micro", "-S", "sample.sampler=foo", timeout=120)
    assert result.returncode != 0
    assert "error: sample.sampler='foo' is not one of ddpm, ddim, dpmpp" in result.stdout + result.stderr
    made = [path for folder in ("data", "models") for path in (project / folder).rglob("*") if path.is_file()]
    assert made == [], made  # DVC makes the outputs' empty folders, no stage ran


def test_exp_run_then_noop_repro(project):
    run(project, "dvc", "exp", "run", "-S", "profile=micro")
    summary = json.loads((project / "metrics" / "summary.json").read_text())
    assert {"classifier_test_accuracy", "best_adherence", "best_variant", "feature_extractor"} <= set(summary)
    # The headline is the selected checkpoint's own test metrics, and the classifier's its metrics file's.
    best = json.loads((project / "metrics" / "evaluate" / summary["best_variant"]
                       / f"epoch_{summary['best_epoch']:03d}_g{summary['best_guidance']:g}.json").read_text())
    assert summary["best_adherence"] == best["adherence"] and summary["best_variant"] == "text-1s"
    classifier = json.loads((project / "metrics" / "classifier.json").read_text())
    assert summary["classifier_test_accuracy"] == classifier["test_accuracy"]
    for name in ("table_4_1", "table_5_1", "table_5_2", "table_5_4", "table_5_5", "table_5_9"):
        assert (project / "report" / f"{name}.csv").is_file(), name
    assert (project / "report" / "README.md").read_text().startswith("# a2i report")
    # The super-resolution stages upsampled the selected checkpoint's test images 32 -> 64, both ways.
    assert set(summary["upsampling"]) == {"bicubic", "diffusion"}
    assert {row["resolution"] for row in summary["upsampling"].values()} == {64.0}
    selected = json.loads((project / "data" / "samples_sr" / "selected.json").read_text())
    assert (selected["variant"], selected["epoch"]) == (summary["best_variant"], summary["best_epoch"])
    for method in ("bicubic", "diffusion"):
        (upsampled,) = sorted((project / "data" / "samples_sr" / method).glob("*.npz"))
        with np.load(upsampled) as archive, np.load(project / "data" / "samples" / selected["variant"]
                                                   / upsampled.name) as base:
            assert archive["images"].shape == (len(base["images"]), 64, 64, 3)
            assert (archive["labels"] == base["labels"]).all() and (archive["rows"] == base["rows"]).all()
    assert (project / "report" / "table_5_3_superres.csv").is_file()
    assert (project / "report" / "figure_superres.png").stat().st_size > 1000
    # dvc repro never recomposes: params.yaml now holds the micro composition and nothing is stale.
    output = run(project, "dvc", "repro")
    assert "Running stage" not in output, output
    # The CFG sweep (micro: s = 1 beside the main 3, at the final checkpoint) has stages of its own: another sweep
    # re-samples that checkpoint alone, and an empty one leaves its outputs empty.
    sweep = project / "data" / "samples_cfg" / "text-1s"
    assert sorted(path.name for path in sweep.glob("*.npz")) == ["epoch_002_g1_s0.npz"]
    output = run(project, "dvc", "exp", "run", "-S", "profile=micro", "-S", "sample.cfg_scales=[]")
    ran = [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]
    assert ran == ["check", "sample_cfg", "evaluate_cfg", "report"], ran
    assert [list(folder.iterdir()) for folder in (sweep, project / "metrics" / "evaluate_cfg" / "text-1s")] == [[], []]
    assert "Running stage" not in run(project, "dvc", "repro")


def test_queued_experiments_and_metrics_diff(project):
    for seed in (1, 2):
        run(project, "dvc", "exp", "run", "--queue", "--name", f"seed{seed}", "-S", "profile=micro",
            "-S", f"sample.seed={seed}")
    run(project, "dvc", "queue", "start", "-j", "1")
    status = wait_for_queue(project, deadline_s=900)
    assert status.count("Success") >= 2, status
    diff = run(project, "dvc", "metrics", "diff", "seed1", "seed2")
    assert "metrics/summary.json" in diff or "metrics/evaluate" in diff, diff


def local_data(folder: Path) -> dict[str, bytes]:
    """A small Sub-URMP tree and stand-in weight files at `folder`, as a user fills it by hand; returns the
    weight files' contents by name."""
    synthesize(folder, train_performances=2, validation_performances=1, performance_seconds=4.0,
               frame_width=160, frame_height=90)
    weights = {"AudioCLIP-Partial-Training.pt": b"audioclip", "pt_inception-2015-12-05-6726825d.pth": b"inception"}
    for name, content in weights.items():
        (folder / name).write_bytes(content)
    return weights


def test_local_data_recipe_reaches_prepare(tmp_path):
    project = copy_project(tmp_path / "a2i")
    weights = local_data(tmp_path / "mine")
    pins = [f"download.{item}.sha256='{hashlib.sha256(weights[name]).hexdigest()}'" for item, name in
            (("audioclip", "AudioCLIP-Partial-Training.pt"), ("inception", "pt_inception-2015-12-05-6726825d.pth"))]
    local_files = {p: p.read_bytes() for p in (tmp_path / "mine").rglob("*") if p.is_file()}
    # the README's command as written, on the micro profile with the audio head at the size the released weights
    # fit, with the stand-in weight files' sha256 pinned (the stand-in Inception file would fail the digest prefix
    # of its name, which is checked when none is pinned)
    run(project, "dvc", "exp", "run", "prepare", "-S", "data=suburmp", "-S", "download.source=local",
        "-S", f"download.local_dir={tmp_path / 'mine'}", "-S", "profile=micro", "-S", "finetune.model_size=thesis",
        "-S", pins[0], "-S", pins[1])
    assert (project / "data" / "prepared" / "images.npy").is_file()
    composed = yaml.safe_load((project / "params.yaml").read_text())
    for path in (composed["finetune"]["checkpoint"], composed["evaluate"]["fid_weights"]):  # each in its item's folder
        assert (project / path).read_bytes() == weights[Path(path).name]
    # DVC hashed and cached every linked file (a symlinked folder it would leave out); the user's files are as they were
    outs = {out["path"]: out["nfiles"] for out in
            yaml.safe_load((project / "dvc.lock").read_text())["stages"]["download"]["outs"]}
    tree = [p for p in local_files if p.name not in weights]
    # + manifest.json in each
    assert outs == {"data/download/suburmp": len(tree) + 1, "data/download/audioclip": 2, "data/download/inception": 2}
    assert all(p.read_bytes() == content for p, content in local_files.items())
