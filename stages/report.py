"""DVC stage `report`: thesis tables, figures and metrics/summary.json from the metrics."""

from pathlib import Path

from a2i.params import load_section
from a2i.report.build import build_report
from a2i.stage import run_stage
from a2i.variants import METRICS, grid


def report() -> None:
    params = load_section("report")
    build_report(out=Path(params["out"]), metrics_dir=METRICS, plots_dir=Path("plots/confusion"),
                 prepared=Path(params["prepared"]), grid=grid(params["lengths"], params["alignments"], params["study"]),
                 guidance=float(params["guidance"]), cfg_sweep=params["cfg_sweep"], dataset=params["dataset"])


if __name__ == "__main__":
    run_stage(__doc__, report)
