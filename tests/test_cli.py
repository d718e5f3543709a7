"""The `a2i` group: a fast start (no heavy imports) and every error as one line."""

import subprocess
import sys
import textwrap

from click.testing import CliRunner
from terminate import assert_sigterm_cleans_up

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


def test_sigterm_ends_a_command_in_one_line_after_its_clean_ups(tmp_path):
    script = tmp_path / "cli.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from a2i.cli import main
        from a2i.io import atomic_path

        @main.command("slow-write")
        def slow_write():
            with atomic_path(OUT) as tmp:
                tmp.write_bytes(b"partial")
                print("writing", flush=True)
                time.sleep(60)

        OUT = sys.argv.pop()
        main()
    """))
    assert_sigterm_cleans_up(script, "slow-write", str(tmp_path / "out.bin"))
