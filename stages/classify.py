"""DVC stage `classify`: the instrument classifier on the real images (thesis 2.4.3, 4.3.1)."""

from a2i.config import ClassifyConfig, load_section_config
from a2i.devices import select_device
from a2i.evaluation.classifier import classify
from a2i.stage import Option, run_stage
from a2i.variants import CLASSIFIER, METRICS, PREPARED

if __name__ == "__main__":
    run_stage(__doc__, lambda device: classify(PREPARED, CLASSIFIER, METRICS / "classifier.json",
                                               **load_section_config(ClassifyConfig).kwargs(),
                                               device=str(select_device(device))),
              Option("device", "auto (a free GPU, else the CPU), cpu, cuda or cuda:<index>", default="auto"))
