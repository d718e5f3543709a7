from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from a2i.cli import main
from a2i.data.cli import synthesize_cmd

from .helpers import loud_track, write_performance, write_stub


def test_prepare_command(tmp_path):
    raw = tmp_path / "Sub-URMP"
    write_performance(raw, "train", "double_bass", 0, loud_track(2.0))
    write_stub(raw, "validation")
    result = CliRunner().invoke(main, ["prepare", "--raw", str(raw), "--out", str(tmp_path / "out"),
                                       "--lengths", "1,2", "--silence-peak", "450", "--image-size", "32"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "out" / "index_2s_train.csv")) == 1
    assert pd.read_csv(tmp_path / "out" / "index_1s_train.csv").shape[0] == 11


def test_prepare_bad_input_is_one_line(tmp_path):
    raw = tmp_path / "Sub-URMP"
    write_performance(raw, "train", "cello", 0, loud_track(1.0))
    write_stub(raw, "validation")
    (raw / "chunk/train/cello/cello00_700.wav").write_bytes(b"junk")
    result = CliRunner().invoke(main, ["prepare", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]  # tqdm shares the stream
    assert len(errors) == 1 and "cello00_700.wav: not a readable WAV file" in errors[0]
    assert not (tmp_path / "out").exists()


def test_help_shows_defaults():
    runner = CliRunner()
    for command, default in [("prepare", "[default: 1,2,3,4,5]"), ("synthesize", "[default: 14.0]"),
                             ("download", "[default: suburmp]")]:
        result = runner.invoke(main, [command, "--help"])
        assert result.exit_code == 0 and default in result.output


CONFIG = Path(__file__).resolve().parents[2] / "conf" / "config.yaml"


def _errors(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error: ")]


def test_synthesize_defaults_are_the_pipelines():
    pipeline = yaml.safe_load(CONFIG.read_text())["synthesize"]
    defaults = {param.name: param.default for param in synthesize_cmd.params if param.name in pipeline}
    assert defaults == pipeline


@pytest.mark.parametrize("options, named", [
    (["--frame-width", "0", "--frame-height", "0"], "--frame-width=0 is not an integer in 1..7680; --frame-height=0"),
    (["--frame-width", "-5", "--frame-height", "-10"], "--frame-width=-5 is not an integer in 1..7680"),
    (["--frame-width", "70000"], "--frame-width=70000 is not an integer in 1..7680"),
    (["--performance-seconds", "1e308"], "--performance-seconds=1e+308 is not a multiple of 0.1 s in 2.6..3600"),
    (["--performance-seconds", "nan"], "--performance-seconds=nan is not a multiple of 0.1 s"),
    (["--seed", "-1"], "--seed=-1 is not an integer in 0..4294967295"),
])
def test_synthesize_checks_options_before_writing(tmp_path, options, named):
    out = tmp_path / "synthetic"
    result = CliRunner().invoke(main, ["synthesize", "--out", str(out), *options])
    assert result.exit_code != 0
    assert len(_errors(result)) == 1 and named in _errors(result)[0], result.output
    assert not out.exists()


@pytest.mark.parametrize("options, named", [
    (["--lengths", "nan"], "--lengths[0]=nan is not a positive multiple of 0.1 s up to 10"),
    (["--lengths", "100"], "--lengths[0]=100.0 is not a positive multiple of 0.1 s up to 10"),
    (["--silence-peak", "-1"], "--silence-peak=-1 is not an integer in 0..32767"),
    (["--silence-peak", "40000"], "--silence-peak=40000 is not an integer in 0..32767"),
])
def test_prepare_checks_options_before_writing(tmp_path, options, named):
    raw = tmp_path / "Sub-URMP"
    write_performance(raw, "train", "double_bass", 0, loud_track(2.0))
    write_stub(raw, "validation")
    result = CliRunner().invoke(main, ["prepare", "--raw", str(raw), "--out", str(tmp_path / "out"), *options])
    assert result.exit_code != 0
    assert len(_errors(result)) == 1 and named in _errors(result)[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Sub-URMP"]


def _download_params(tmp_path, retries, url="http://127.0.0.1:9/Sub-URMP.zip"):
    """A params file with the pipeline's whole `download` section."""
    section = {"source": "url", "local_dir": None, "items": [], "retries": retries,
               **{item: {"url": url, "sha256": ""} for item in ("suburmp", "audioclip", "inception")}}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"download": section}))
    return params


def test_download_command_names_the_url_offline(tmp_path):
    params = _download_params(tmp_path, retries=0)
    result = CliRunner().invoke(main, ["download", "--params", str(params), "--out", str(tmp_path / "d")])
    assert result.exit_code == 1 and "http://127.0.0.1:9/Sub-URMP.zip" in result.output


@pytest.mark.parametrize("retries", ["abc", -1])
def test_download_checks_params_before_creating_anything(tmp_path, retries):
    params = _download_params(tmp_path, retries)
    out = tmp_path / "d"
    result = CliRunner().invoke(main, ["download", "--params", str(params), "--out", str(out),
                                       "--item", "audioclip"])
    assert result.exit_code == 1
    assert result.output == f"error: {params}: download.retries={retries!r} is not an integer >= 0\n"
    assert not out.exists()
