"""`dvc repro` re-runs exactly what a change affects only if every stage declares the code it runs: each stage's
import closure inside `a2i/` must be covered by its `deps` in dvc.yaml."""

from __future__ import annotations

import ast
import copy
import dataclasses
import re
from pathlib import Path

import yaml

from a2i.code import PLUMBING, closure, lazy_export

REPO = Path(__file__).resolve().parent.parent


def stages(dvc_yaml: dict) -> dict[str, tuple[Path, list[str]]]:
    """stage name -> (its script, its declared deps), matrix stages once (their deps are the same per item)."""
    result = {}
    for name, stage in dvc_yaml["stages"].items():
        match = re.search(r"python (stages/\w+\.py)", stage["cmd"])
        assert match, f"{name}: cmd does not run a stage script"
        result[name] = (REPO / match[1], [str(dep) for dep in stage.get("deps", [])])
    return result


def only_a_docstring(file: str) -> bool:
    """A package `__init__.py` that runs nothing."""
    body = ast.parse((REPO / file).read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def undeclared(dvc_yaml: dict) -> dict[str, list[str]]:
    """stage -> the files of its closure that no declared dep (a file or a folder) covers."""
    gaps = {}
    for name, (script, deps) in stages(dvc_yaml).items():
        missing = sorted(f for f in closure(script) - PLUMBING.keys() if not only_a_docstring(f)
                         and not any(f == dep or f.startswith(dep.rstrip("/") + "/") for dep in deps))
        if missing:
            gaps[name] = missing
    return gaps


def dvc_yaml() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_stage_declares_its_import_closure():
    assert undeclared(dvc_yaml()) == {}


def test_the_check_stage_declares_every_file_its_rules_come_from():
    # its logic is a2i/config.py, plumbing to every other stage: the bounds it imports (a2i.MAX_BATCH,
    # a2i.diffusion.EMB_DIM, ...) are rules of its own, so it is followed through the plumbing
    deps = dvc_yaml()["stages"]["check"]["deps"]
    runs_only = {"a2i/io.py", "a2i/kernels.py", "a2i/resources.py", "a2i/stage.py"}  # write, pin, bound, report
    assert sorted(closure(REPO / "stages" / "check.py", through_plumbing=True) - runs_only - set(deps)) == []


def test_a_missing_dep_is_caught():
    planted = copy.deepcopy(dvc_yaml())
    deps = planted["stages"]["train"]["deps"]
    deps.remove("a2i/data/dataset.py")
    assert undeclared(planted) == {"train": ["a2i/data/dataset.py"]}


def test_the_closure_follows_lazy_and_relative_imports():
    files = closure(REPO / "stages" / "train.py")
    assert {"a2i/diffusion/train.py", "a2i/diffusion/unet.py", "a2i/data/dataset.py"} <= files
    assert "a2i/report/build.py" not in files


def test_the_closure_follows_names_a_package_resolves_on_first_use():
    assert lazy_export("a2i.audioclip.AudioCLIP") == "a2i.audioclip.model"  # a2i.audioclip's _EXPORTS
    assert lazy_export("a2i.audioclip.MIN_SECONDS") == "a2i.audioclip.MIN_SECONDS"  # defined in __init__.py
    assert lazy_export("a2i.diffusion.unet") == "a2i.diffusion.unet"
    files = closure(REPO / "benchmarks" / "test_audioclip_bench.py")  # `from a2i.audioclip import AudioCLIP`
    assert {"a2i/audioclip/model.py", "a2i/audioclip/esresnext.py"} <= files
    assert "a2i/audioclip/checkpoint.py" not in files  # another lazily exported name's module


def declared_params(stage: dict) -> set[str]:
    """The params.yaml keys a stage lists (`params.yaml:` with no keys means the whole file)."""
    keys = set()
    for entry in stage.get("params", []):
        keys |= {str(k) for k in entry} if isinstance(entry, dict) else {str(entry)}
    return keys


def section_params(section) -> set[str]:
    """What a stage of `section` must list: every key but the operational ones."""
    return {f"{section.NAME}.{f.name}" for f in dataclasses.fields(section) if f.name not in section.OPERATIONAL}


# The scripts that read another section than their name's, or the grid keys too.
READS = {"evaluate_sr": ("evaluate",), "sample_sr": ("sample_sr", "grid")}
GRID = {"lengths", "alignments", "study.alignment", "study.length", "study.variants"}  # the cells (not study.epoch)
# The stages that read part of their section: the main sampling and the CFG sweep share `sample`, and only the
# main grid's cells draw validation images.
SWEEP = {"sample.cfg_scales", "sample.cfg_epoch"}
UNREAD = {"sample": SWEEP, "sample_study": SWEEP | {"sample.val_per_class"}, "sample_cfg": {"sample.val_per_class"}}


def test_each_stage_lists_the_keys_that_change_its_outputs_and_no_operational_one():
    from a2i import config

    sections = {cls.NAME: cls for cls in config.SECTIONS}
    spec = dvc_yaml()
    for name, (script, _) in stages(spec).items():
        declared = declared_params(spec["stages"][name])
        if script.stem in ("check", "report"):  # validate / diff all of params.yaml
            assert declared == {"params.yaml"}, name
            continue
        reads = READS.get(script.stem, (script.stem,))
        expected = set().union(*(GRID if read == "grid" else section_params(sections[read]) for read in reads))
        assert declared == expected - UNREAD.get(name, set()), name


def test_threads_and_devices_are_operational():
    from a2i import config

    assert "train.threads" not in section_params(config.TrainConfig)
    assert "sample.threads" not in section_params(config.SampleConfig)
    assert "finetune.device" not in section_params(config.FinetuneConfig)
    assert "train.lr" in section_params(config.TrainConfig)


def superfluous(dvc_yaml: dict) -> dict[str, list[str]]:
    """stage -> the declared `a2i/` files and folders its closure does not reach (they would re-run it for
    nothing)."""
    extra = {}
    for name, (script, deps) in stages(dvc_yaml).items():
        files = closure(script, through_plumbing=True)

        def reached(dep: str) -> bool:
            return dep in files if dep.endswith(".py") else any(f.startswith(f"{dep}/") for f in files)

        unused = sorted(dep for dep in deps if dep.startswith("a2i/") and not reached(dep))
        if unused:
            extra[name] = unused
    return extra


def test_no_stage_declares_code_it_does_not_run():
    assert superfluous(dvc_yaml()) == {}


def test_the_committed_lock_records_only_the_pipelines_stages():
    """DVC keeps the lock entry of a stage that no longer exists (a length dropped from the grid), and re-reads and
    rewrites the whole dvc.lock after every stage it runs: stale entries slow every stage of every run."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        pipeline = {stage.addressing for stage in repo.index.stages}
    assert set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]) == pipeline
