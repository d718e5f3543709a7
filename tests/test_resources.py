import logging
import sys

from a2i import resources
from a2i.stage import Option, run_stage


def test_the_table_reads_only_the_resources_lines():
    lines = ["INFO a2i.stage: " + resources.usage_line("train@text-1s", 1.5), "INFO other: resources of x"]
    rows = resources.parse(lines)
    assert len(rows) == 1 and rows[0]["stage"] == "train@text-1s" and rows[0]["device"] == "cpu"
    assert min(float(rows[0][key]) for key in ("wall_s", "cpu_s", "peak_rss_gib")) > 0
    assert rows[0]["peak_gpu_gib"] == "-"
    startup, wall = float(rows[0]["startup_s"]), float(rows[0]["wall_s"])
    assert 0 < startup and abs(startup - (wall - 1.5)) <= 0.11
    table = resources.table(rows + rows)
    assert "| train@text-1s |" in table and f"| **total** | {2 * float(rows[0]['wall_s']):.1f} |" in table


def test_the_wall_time_is_the_process_age():
    assert 0 < resources.process_seconds() < 24 * 3600


def test_a_stage_that_ends_well_logs_its_resources(monkeypatch, caplog):
    monkeypatch.setattr(sys, "argv", ["stages/train.py", "--variant", "text-1s"])
    with caplog.at_level(logging.INFO, logger="a2i.stage"):
        run_stage("doc", lambda variant: None, Option("variant", "v"))
    rows = resources.parse(caplog.messages)
    assert [row["stage"] for row in rows] == ["train@text-1s"]


def test_an_option_at_its_default_is_not_part_of_the_stage_name(monkeypatch, caplog):
    resolution = Option("resolution", "r", default="base")
    for argv, name in ((["stages/classify.py"], "classify"), (["stages/classify.py", "--resolution", "hr"],
                                                               "classify@hr")):
        monkeypatch.setattr(sys, "argv", argv)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="a2i.stage"):
            run_stage("doc", lambda resolution, device: None, resolution, Option("device", "d", default="auto"))
        assert [row["stage"] for row in resources.parse(caplog.messages)] == [name]


def test_the_table_of_a_missing_log_is_a_one_line_error(tmp_path):
    import subprocess

    result = subprocess.run([sys.executable, "-m", "a2i.resources", str(tmp_path / "no.log")], capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert result.stderr == f"error: [Errno 2] No such file or directory: '{tmp_path / 'no.log'}'\n"
