"""DVC stage `classify`: the instrument classifier on the real images (thesis 2.4.3, 4.3.1); `--resolution hr` trains
the same classifier on the high-resolution crops, the judge of the super-resolution stages."""

from a2i.config import ClassifyConfig, load_section_config
from a2i.devices import select_device
from a2i.evaluation.classifier import classify
from a2i.stage import Option, run_stage
from a2i.variants import CLASSIFIER, CLASSIFIER_HR, HR_IMAGES, IMAGES, METRICS, PREPARED

RESOLUTIONS = {  # the images it trains on, the model, its metrics
    "base": (IMAGES, CLASSIFIER, METRICS / "classifier.json"),
    "hr": (HR_IMAGES, CLASSIFIER_HR, METRICS / "classifier_hr.json"),
}


def train_classifier(resolution: str, device: str) -> None:
    images_file, model, metrics = RESOLUTIONS[resolution]
    classify(PREPARED, model, metrics, **load_section_config(ClassifyConfig).kwargs(),
             device=str(select_device(device)), images_file=images_file)


if __name__ == "__main__":
    run_stage(__doc__, train_classifier, Option("resolution", "base (prepare.image_size) or hr (hr_image_size)",
                                                "base", tuple(RESOLUTIONS)),
              Option("device", "auto (a free GPU, else the CPU), cpu, cuda or cuda:<index>", default="auto"))
