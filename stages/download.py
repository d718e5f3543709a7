"""DVC stage `download`: the real Sub-URMP and pretrained weights (nothing for the synthetic default)."""

import logging

from a2i.data.download import download
from a2i.params import load_section

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        download(**load_section("download"))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
