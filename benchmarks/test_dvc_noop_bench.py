"""A no-op `dvc repro` of the full thesis grid (5 lengths x 3 alignments, 10 checkpoints each) stays under 15 s.

The real stages would take days, so the benchmark keeps our dvc.yaml and the thesis params but swaps every
command for one that writes the stage's declared outputs (a train folder gets 10 checkpoint files). DVC then
hashes, locks and checks exactly the DAG the thesis run has, its code dependencies (a copy of `a2i/` and
`stages/`) included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from a2i import params

REPO = Path(__file__).resolve().parent.parent
FAKE_STAGE = '''
import json, sys
from pathlib import Path
inside = json.loads(Path("inside.json").read_text())   # files other stages read from inside a folder output
for out in sys.argv[1:]:
    path = Path(out)
    if path.suffix:                       # a file output
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(out)
        continue
    path.mkdir(parents=True, exist_ok=True)  # a folder output: ten checkpoints' worth of files
    for epoch in range(10, 101, 10):
        (path / f"epoch_{epoch:03d}.pt").write_text(f"{out} {epoch}")
    for name in inside.get(out, []):
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(name)
'''


def _paths(entries) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def fake_pipeline(root: Path) -> None:
    """Our dvc.yaml with every cmd replaced by FAKE_STAGE writing that stage's outputs."""
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for stage in pipeline["stages"].values():
        outs = _paths(stage.get("outs")) + _paths(stage.get("metrics")) + _paths(stage.get("plots"))
        stage["cmd"] = f"{sys.executable} fake_stage.py " + " ".join(outs)
        stage["deps"] = [*stage.get("deps", []), "fake_stage.py"]
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    for code in ("a2i", "stages"):  # what the stages' code deps name, without the caches beside it
        shutil.copytree(REPO / code, root / code, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "fake_stage.py").write_text(FAKE_STAGE)
    # prepare reads the synthesize output folder itself (the fake writes no Sub-URMP tree inside it).
    thesis = params.compose(overrides=["profile=thesis", "prepare.raw=data/synthetic"])
    (root / "params.yaml").write_text(params.dump(thesis))
    (root / "inside.json").write_text(json.dumps(files_inside_outputs(root)))


def files_inside_outputs(root: Path) -> dict[str, list[str]]:
    """For each folder output, the paths below it that some stage depends on (resolved by DVC itself)."""
    from dvc.repo import Repo

    stages = Repo(str(root)).index.stages
    outs = {str(Path(o.fs_path).relative_to(root)) for s in stages for o in s.outs}
    inside: dict[str, list[str]] = {}
    for stage in stages:
        for dep in stage.deps:
            path = Path(dep.fs_path).relative_to(root)
            for parent in path.parents:
                if str(parent) in outs:
                    inside.setdefault(str(parent), []).append(str(path.relative_to(parent)))
    return inside


def dvc(root: Path, *args: str) -> float:
    env = os.environ | {"DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(root / ".site-cache")}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return time.perf_counter() - start


def test_noop_repro_of_thesis_grid(benchmark, tmp_path):
    root = tmp_path / "grid"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    fake_pipeline(root)
    first = dvc(root, "repro")
    stages = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], cwd=root,
                            capture_output=True, text=True, check=True).stdout.split()
    noop = benchmark.pedantic(dvc, args=(root, "repro"), rounds=1, iterations=1)
    benchmark.extra_info.update(stages=len(stages), first_repro_s=round(first, 1), noop_repro_s=round(noop, 1))
    assert len(stages) >= 15 * 5  # 15 cells x (finetune, embed, train, sample, evaluate)
    assert noop < 15, f"no-op dvc repro took {noop:.1f} s"
