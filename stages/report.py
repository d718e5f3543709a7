"""DVC stage `report`: thesis tables, figures, the recipe card and metrics/summary.json from the metrics."""

from dataclasses import asdict

from a2i.config import ReportConfig, load_section_config
from a2i.params import load_params
from a2i.report.build import build_report
from a2i.stage import run_stage
from a2i.variants import CONFUSION_PLOTS, METRICS, PREPARED, REPORT, grid


def report() -> None:
    config = load_section_config(ReportConfig)
    build_report(out=REPORT, metrics_dir=METRICS, plots_dir=CONFUSION_PLOTS, prepared=PREPARED,
                 grid=grid(config.lengths, config.alignments, asdict(config.study)), guidance=config.guidance,
                 cfg_sweep=config.study.cell, study_epoch=config.study.epoch, dataset=config.dataset,
                 params=load_params())


if __name__ == "__main__":
    run_stage(__doc__, report)
