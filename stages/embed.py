"""DVC stage `embed`: embed every prepared sample with one cell's fine-tuned audio head."""

import argparse
import logging

from a2i.audioclip.embed import run_embed
from a2i.params import load_section

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embedding", required=True, help="<alignment>-<length>s, e.g. text-1s")
    args = parser.parse_args()
    try:
        run_embed(args.embedding, load_section("embed"))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
