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


def test_a_file_a_command_cannot_write_is_one_line(tmp_path, monkeypatch):
    # the output checks cannot foresee everything (a full disk, /proc): the OSError itself is the one line
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "crops.png"))

    monkeypatch.setattr("a2i.data.crops.contact_sheet", full_disk)
    result = CliRunner().invoke(main, ["crops", "--raw", str(tmp_path), "--crop", "{}", "-o",
                                       str(tmp_path / "crops.png")])
    assert result.exit_code == 1
    assert result.output == f"error: [Errno 28] No space left on device: '{tmp_path / 'crops.png'}'\n"
