"""DVC stages `evaluate` and `evaluate_cfg`: adherence, confusion and Frechet distances of every checkpoint of one
variant, or of its CFG sweep."""

from a2i.config import EvaluateConfig, load_section_config
from a2i.devices import select_device
from a2i.evaluation.evaluate import evaluate_variant
from a2i.stage import Option, run_stage
from a2i.variants import CFG_CONFUSION_PLOTS, CFG_METRICS, CLASSIFIER, CONFUSION_PLOTS, METRICS, PREPARED, samples_dir

OUTPUTS = {"main": ("test", METRICS / "evaluate", CONFUSION_PLOTS), "cfg": ("cfg", CFG_METRICS, CFG_CONFUSION_PLOTS)}


def evaluate(variant: str, guidance: str, device: str) -> None:
    config = load_section_config(EvaluateConfig)
    samples, metrics, plots = OUTPUTS[guidance]
    evaluate_variant(variant, PREPARED, samples_dir(variant, samples), CLASSIFIER, metrics / variant, plots / variant,
                     **config.kwargs(), device=str(select_device(device)), empty_ok=guidance == "cfg")


if __name__ == "__main__":
    run_stage(__doc__, evaluate, Option("variant", "e.g. text-2s, text-2s-nocfg, text-2s-pca"),
              Option("guidance", "main: the images of `sample`; cfg: those of `sample_cfg`", "main", tuple(OUTPUTS)),
              Option("device", "auto (a free GPU, else the CPU), cpu, cuda or cuda:<index>", default="auto"))
