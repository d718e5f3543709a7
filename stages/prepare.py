"""DVC stage `prepare`: Sub-URMP chunk/frame pairs -> packed samples of every length (thesis 4.2.1)."""

import logging

from a2i.data.prepare import prepare
from a2i.params import load_section

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        prepare(**load_section("prepare"))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
