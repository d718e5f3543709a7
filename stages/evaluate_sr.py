"""DVC stage `evaluate_sr`: adherence and Frechet distances at the high resolution of the upsampled images."""

from a2i.config import EvaluateConfig, load_section_config
from a2i.devices import select_device
from a2i.evaluation.evaluate import evaluate_upsampled
from a2i.stage import Option, run_stage
from a2i.variants import CLASSIFIER_HR, METRICS, PREPARED


def evaluate(device: str) -> None:
    config = load_section_config(EvaluateConfig)
    evaluate_upsampled(PREPARED, ".", CLASSIFIER_HR, METRICS / "evaluate_sr", **config.kwargs(),
                       device=str(select_device(device)))


if __name__ == "__main__":
    run_stage(__doc__, evaluate, Option("device", "auto (a free GPU, else the CPU), cpu, cuda or cuda:<index>",
                                        default="auto"))
