"""DVC stage `finetune`: contrastive fine-tuning of the AudioCLIP audio head for one (alignment, length) cell."""

import argparse
import logging

from a2i.audioclip.finetune import run_finetune
from a2i.params import load_section

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embedding", required=True, help="<alignment>-<length>s, e.g. text-1s")
    args = parser.parse_args()
    try:
        run_finetune(args.embedding, load_section("finetune"))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
