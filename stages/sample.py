"""DVC stage `sample`: images from every checkpoint of one variant for the test conditions."""

import argparse
import logging

from a2i.diffusion.sample import sample_variant
from a2i.params import load_section

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True, help="<alignment>-<length>s[-nocfg|-pca], e.g. text-2s")
    args = parser.parse_args()
    try:
        sample_variant(args.variant, load_section("sample"))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
