"""DVC stage `evaluate`: adherence, confusion and Frechet distances of every checkpoint of one variant."""

from a2i.config import EvaluateConfig, load_section_config
from a2i.devices import select_device
from a2i.evaluation.evaluate import evaluate_variant
from a2i.stage import Option, run_stage
from a2i.variants import CLASSIFIER, CONFUSION_PLOTS, METRICS, PREPARED, samples_dir


def evaluate(variant: str, device: str) -> None:
    config = load_section_config(EvaluateConfig)
    evaluate_variant(variant, PREPARED, samples_dir(variant), CLASSIFIER, METRICS / "evaluate" / variant,
                     CONFUSION_PLOTS / variant, **config.kwargs(), device=str(select_device(device)))


if __name__ == "__main__":
    run_stage(__doc__, evaluate, Option("variant", "e.g. text-2s, text-2s-nocfg, text-2s-pca"),
              Option("device", "auto (a free GPU, else the CPU), cpu, cuda or cuda:<index>", default="auto"))
