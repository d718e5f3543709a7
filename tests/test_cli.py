"""The `a2i` group: a fast start (no heavy imports) and every error as one line."""

import subprocess
import sys

from click.testing import CliRunner

from a2i.cli import main

HEAVY = ("torch", "diffusers", "open_clip", "pandas", "matplotlib", "dvclive")


def test_importing_the_cli_loads_no_heavy_library():
    code = f"import sys, a2i.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""


def test_usage_errors_are_one_line():
    for args in (["no-such-command"], ["--no-such-option"], ["generate", "--n", "x"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, args
        assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
