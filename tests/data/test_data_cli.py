import pandas as pd
from click.testing import CliRunner

from a2i.cli import main

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


def test_download_command_names_the_url_offline(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("download: {retries: 0, suburmp: {url: 'http://127.0.0.1:9/Sub-URMP.zip', sha256: ''}}\n")
    result = CliRunner().invoke(main, ["download", "--params", str(params), "--out", str(tmp_path / "d")])
    assert result.exit_code == 1 and "http://127.0.0.1:9/Sub-URMP.zip" in result.output
