"""DVC stage `evaluate`: adherence, confusion and Frechet distances of every checkpoint of one variant."""

import argparse
import logging

from a2i.evaluation.evaluate import evaluate_variant
from a2i.params import load_section
from a2i.variants import CLASSIFIER, METRICS, PREPARED, samples_dir

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True, help="e.g. text-2s, text-2s-nocfg, text-2s-pca")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        evaluate_variant(args.variant, PREPARED, samples_dir(args.variant), CLASSIFIER,
                         METRICS / "evaluate" / args.variant, f"plots/confusion/{args.variant}",
                         **load_section("evaluate"), device=args.device)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
