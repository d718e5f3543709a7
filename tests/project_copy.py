"""End-to-end DVC runs on a fresh copy of this repository (tests/test_pipeline.py, tests/test_smoke.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTPUT_DIRS = ("metrics/", "report/", "plots/", "dvclive/")  # committed outputs of the default run


def run(cwd: Path, *args: str, timeout: int = 900) -> str:
    """stdout of `args` run in `cwd` with what DVC needs offline; AssertionError with both streams' tails."""
    return _run(cwd, args, timeout).stdout


def run_with_log(cwd: Path, *args: str, timeout: int = 900) -> str:
    """stdout and stderr of `args` (stage logs go to stderr), as `run`."""
    result = _run(cwd, args, timeout)
    return result.stdout + result.stderr


def _run(cwd: Path, args: tuple[str, ...], timeout: int) -> subprocess.CompletedProcess:
    result = attempt(cwd, *args, timeout=timeout)
    if result.returncode:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def attempt(cwd: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """`args` run in `cwd` as `run` does, whatever its exit status."""
    bin_dir = Path(sys.executable).parent
    env = os.environ | {
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(cwd.parent / "site-cache"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",  # stage commands call `python`
        "PYTHONPATH": str(cwd),  # ... with the copy's a2i, whichever checkout the environment has installed
        # experiments are git commits: a fresh machine may have no git identity
        "GIT_AUTHOR_NAME": "a2i tests", "GIT_AUTHOR_EMAIL": "tests@a2i.invalid",
        "GIT_COMMITTER_NAME": "a2i tests", "GIT_COMMITTER_EMAIL": "tests@a2i.invalid",
    }
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def copy_project(root: Path) -> Path:
    """A fresh git repository at `root` holding this project's files (tracked and untracked-not-ignored) without
    outputs or dvc.lock, as a user changing profile would start."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        source = REPO / name
        if source.is_file() and not name.startswith(OUTPUT_DIRS):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    (root / "dvc.lock").unlink(missing_ok=True)
    run(root, "git", "init", "-q")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "clone")
    return root
