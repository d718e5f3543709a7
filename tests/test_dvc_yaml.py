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


def test_each_download_item_is_an_output_read_only_by_its_stages():
    # Adding a download item, or fetching Sub-URMP again, reruns only the stages that read it, and no matrix
    # cell hashes the extracted Sub-URMP (the header's rule): finetune reads finetune.checkpoint, the
    # evaluations evaluate.fid_weights, prepare the data set through prepare.raw.
    from a2i.data import DOWNLOAD_ITEMS
    from a2i.params import compose

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    items = {name: f"data/download/{name}" for name in DOWNLOAD_ITEMS}
    assert stages["download"]["outs"] == list(items.values())
    thesis = compose(overrides=["profile=thesis", "data=suburmp"])
    evaluations = ("evaluate", "evaluate_study", "evaluate_cfg", "evaluate_sr")
    reads = {"finetune": thesis["finetune"]["checkpoint"],
             **{name: thesis["evaluate"]["fid_weights"] for name in evaluations}}
    for name, stage in stages.items():
        downloads = [dep for dep in stage.get("deps", []) if dep.startswith("data/download")]
        assert downloads == ([Path(reads[name]).parent.as_posix()] if name in reads else []), name
    assert reads["finetune"].startswith(items["audioclip"] + "/")
    assert reads["evaluate"].startswith(items["inception"] + "/")
    assert thesis["prepare"]["raw"].startswith(items["suburmp"] + "/")
    assert "${prepare.raw}" in stages["prepare"]["deps"]


def _plot_dirs() -> dict[str, dict]:
    """Top-level plots of dvc.yaml: {folder: props}."""
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    return {path: props for entry in plots for path, props in entry.items()}


def _dvclive_outs(stage: str) -> list[str]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return [path for out in stages[stage]["outs"] for path in out if path.startswith("dvclive/")]


def _tsv_columns(folder: Path) -> set[str]:
    return {tsv.read_text().split("\t")[0] for tsv in folder.rglob("*.tsv")}


def test_plots_cover_the_dvclive_folders_of_train_and_finetune(tmp_path):
    from dvclive import Live

    from a2i.audioclip.finetune import _log
    from a2i.diffusion.train import _live

    plots = _plot_dirs()
    live = _live(tmp_path, "text-1s", 0)  # where train.py logs a variant
    live.step = 1
    live.log_metric("train/loss", 0.5)
    live.next_step()
    live.end()
    train_dir = Path(live.dir).relative_to(tmp_path).parent.as_posix()
    for stage in ("train", "train_study", "finetune"):
        for out in _dvclive_outs(stage):
            assert Path(out).parent.as_posix() in plots, (stage, out)
    assert _tsv_columns(Path(live.dir)) == {plots[train_dir]["x"]}
    with Live(dir=str(tmp_path / "finetune"), dvcyaml=False, save_dvc_exp=False) as live:
        _log(live, train_loss=0.5)  # how finetune.py logs an epoch
    finetune_dir = Path(_dvclive_outs("finetune")[0]).parent.as_posix()
    assert _tsv_columns(tmp_path / "finetune") == {plots[finetune_dir]["x"]}
