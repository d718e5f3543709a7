"""DVC stage `classify`: the instrument classifier on the real images (thesis 2.4.3, 4.3.1)."""

import argparse
import logging

from a2i.evaluation.classifier import classify
from a2i.params import load_section
from a2i.variants import CLASSIFIER, METRICS, PREPARED

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        classify(PREPARED, CLASSIFIER, METRICS / "classifier.json", **load_section("classify"), device=args.device)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
