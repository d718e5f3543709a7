"""Properties of dvc.yaml that the stages rely on."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_training_logs_persist_with_the_checkpoints_they_describe():
    # DVC deletes non-persistent outputs before re-running a stage; `train` resumes from its persisted
    # checkpoints (a finished run trains no further epochs), so its dvclive history must survive the same way.
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in ("train", "train_study"):
        outs = {key: value for out in stages[name]["outs"] for key, value in out.items()}
        assert [value.get("persist") for value in outs.values()] == [True, True], name
