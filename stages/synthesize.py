"""DVC stage `synthesize`: the embedded synthetic Sub-URMP (default data source)."""

import logging

from a2i.data.synthetic import synthesize
from a2i.params import load_section

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        synthesize(**load_section("synthesize"))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
