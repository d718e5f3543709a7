import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from terminate import assert_sigterm_cleans_up

from a2i.stage import Option, run_stage

VARIANT = Option("variant", "e.g. text-2s")
DEVICE = Option("device", "torch device (default: cpu)", default="cpu")


@pytest.fixture
def argv(monkeypatch):
    def set_argv(*args: str) -> None:
        monkeypatch.setattr(sys, "argv", ["stage.py", *args])

    return set_argv


def test_options_are_parsed_and_passed_as_keywords(argv):
    calls = []
    argv("--variant", "text-1s")
    assert run_stage("doc", lambda **kwargs: calls.append(kwargs), VARIANT, DEVICE) is None
    assert calls == [{"variant": "text-1s", "device": "cpu"}]


def test_a_stage_without_options_takes_no_arguments(argv, capsys):
    calls = []
    argv()
    run_stage("doc", lambda: calls.append(True))
    assert calls == [True]
    argv("--variant", "text-1s")
    with pytest.raises(SystemExit) as exit_info:
        run_stage("doc", lambda: calls.append(True))
    assert exit_info.value.code == 2 and calls == [True]
    assert "unrecognized arguments: --variant text-1s" in capsys.readouterr().err


def test_a_missing_required_option_is_a_usage_error(argv, capsys):
    argv()
    with pytest.raises(SystemExit) as exit_info:
        run_stage("doc", lambda variant: None, VARIANT)
    assert exit_info.value.code == 2
    assert "the following arguments are required: --variant" in capsys.readouterr().err


def test_help_shows_the_docstring_and_options(argv, capsys):
    argv("--help")
    with pytest.raises(SystemExit) as exit_info:
        run_stage("DVC stage `x`: does x.", lambda variant, device: None, VARIANT, DEVICE)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "DVC stage `x`: does x." in out
    assert "--variant VARIANT  e.g. text-2s" in out and "--device DEVICE    torch device (default: cpu)" in out


def fail(error: Exception):
    def action(variant: str) -> None:
        raise error

    return action


def test_a_value_error_becomes_one_error_line(argv):
    argv("--variant", "bogus")
    with pytest.raises(SystemExit) as exit_info:
        run_stage("doc", fail(ValueError("variant 'bogus' is not valid")), VARIANT)
    assert exit_info.value.code == "error: variant 'bogus' is not valid"  # printed to stderr, exit status 1
    assert exit_info.value.__cause__ is None and exit_info.value.__suppress_context__


def test_each_line_of_an_error_is_its_own_error_line(argv):
    argv("--variant", "text-1s")
    with pytest.raises(SystemExit) as exit_info:
        run_stage("doc", fail(ValueError("train.lr=0 is bad\nsample.steps=0 is bad")), VARIANT)
    assert exit_info.value.code == "error: train.lr=0 is bad\nerror: sample.steps=0 is bad"


def test_only_the_listed_errors_are_turned_into_one_line(argv):
    argv("--variant", "text-1s")
    with pytest.raises(SystemExit, match="^error: loss is nan$"):
        run_stage("doc", fail(FloatingPointError("loss is nan")), VARIANT, errors=(FloatingPointError,))
    with pytest.raises(FloatingPointError):
        run_stage("doc", fail(FloatingPointError("loss is nan")), VARIANT)


@pytest.mark.parametrize("error, line", [
    (IsADirectoryError(21, "Is a directory", "data/params_check.json"),
     "error: [Errno 21] Is a directory: 'data/params_check.json'"),
    (MemoryError("Unable to allocate 4.73 TiB for an array"), "error: Unable to allocate 4.73 TiB for an array"),
    (MemoryError(), "error: MemoryError"),
])
def test_files_that_cannot_be_written_and_sizes_that_do_not_fit_are_one_line(argv, error, line):
    argv("--variant", "text-1s")
    with pytest.raises(SystemExit) as exit_info:
        run_stage("doc", fail(error), VARIANT)
    assert exit_info.value.code == line


def test_sigterm_ends_a_stage_in_one_line_after_its_clean_ups(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(textwrap.dedent("""
        import time
        from a2i.io import atomic_path
        from a2i.stage import Option, run_stage

        def write(out):
            with atomic_path(out) as tmp:
                tmp.write_bytes(b"partial")
                print("writing", flush=True)
                time.sleep(60)

        run_stage("doc", write, Option("out", "file"))
    """))
    assert_sigterm_cleans_up(script, "--out", str(tmp_path / "out.bin"))


REPO = Path(__file__).resolve().parent.parent
# (script, its options, a bad value of its own section, the one line it must fail with)
BAD_VALUES = [
    ("synthesize", [], ("synthesize", "train_performances", 0),
     "synthesize.train_performances=0 is not an integer in 1..99"),
    ("download", [], ("download", "retries", -1), "download.retries=-1 is not an integer >= 0"),
    ("prepare", [], ("prepare", "image_size", 0),
     "prepare.image_size=0 is not a multiple of 8 in 8..1024 (the U-Nets pool it three times)"),
    ("finetune", ["--embedding", "text-1s"], ("finetune", "lr", 0), "finetune.lr=0 is not a number in (0, 10]"),
    ("embed", ["--embedding", "text-1s"], ("embed", "batch_size", 0),
     "embed.batch_size=0 is not an integer in 1..4096"),
    ("train", ["--variant", "text-1s"], ("train", "batch_size", 0), "train.batch_size=0 is not an integer in 1..4096"),
    ("sample", ["--variant", "text-1s"], ("sample", "steps", 0), "sample.steps=0 is not an integer >= 1"),
    ("classify", [], ("classify", "epochs", 0), "classify.epochs=0 is not an integer >= 1"),
    ("evaluate", ["--variant", "text-1s"], ("evaluate", "bootstrap", 0),
     "evaluate.bootstrap=0 is not an integer in 1..100000"),
    ("classify", ["--resolution", "hr"], ("classify", "lr", 0), "classify.lr=0 is not a number in (0, 10]"),
    ("train_sr", [], ("train_sr", "steps", 0), "train_sr.steps=0 is not an integer >= 1"),
    ("sample_sr", [], ("sample_sr", "aug_level", -1), "sample_sr.aug_level=-1 is not an integer >= 0"),
    ("evaluate_sr", [], ("evaluate", "bootstrap", 0), "evaluate.bootstrap=0 is not an integer in 1..100000"),
    ("report", [], ("report", "guidance", -1),
     "report.guidance=-1 is not a number >= 0 of at most 6 significant digits (it names the sample files)"),
]


@pytest.mark.parametrize("script, options, bad, line", BAD_VALUES, ids=[row[0] for row in BAD_VALUES])
def test_every_stage_rejects_a_bad_value_of_its_section_before_reading_data(tmp_path, script, options, bad, line):
    # The folder holds params.yaml and nothing else: a stage that read any data first would fail on that instead.
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    section, key, value = bad
    params[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, str(REPO / "stages" / f"{script}.py"), *options], cwd=tmp_path,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"error: {line}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # and wrote nothing
