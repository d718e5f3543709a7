"""SIGTERM while a script writes a file atomically (tests/test_cli.py, tests/test_stage.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def assert_sigterm_cleans_up(script: Path, *args: str) -> None:
    """Run `script` (it prints "writing" inside an atomic write, then sleeps) and stop it with SIGTERM: one error
    line, exit status 1, and nothing left beside the script in its folder."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "writing\n"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1 and stderr == "error: terminated by SIGTERM\n"
    assert [p.name for p in script.parent.iterdir()] == [script.name]
