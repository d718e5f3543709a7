"""DVC stage `report`: thesis tables, figures, the recipe card and metrics/summary.json from the metrics."""

from pathlib import Path

from a2i.params import load_params
from a2i.report.build import build_report
from a2i.stage import run_stage
from a2i.variants import METRICS, grid


def report() -> None:
    params = load_params()
    section = params["report"]
    build_report(out=Path(section["out"]), metrics_dir=METRICS, plots_dir=Path("plots/confusion"),
                 prepared=Path(section["prepared"]),
                 grid=grid(section["lengths"], section["alignments"], section["study"]),
                 guidance=float(section["guidance"]), cfg_sweep=section["cfg_sweep"],
                 study_epoch=section["study"]["epoch"], dataset=section["dataset"], params=params)


if __name__ == "__main__":
    run_stage(__doc__, report)
