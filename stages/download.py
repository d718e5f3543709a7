"""DVC stage `download`: the real Sub-URMP and pretrained weights (nothing for the synthetic default)."""

from a2i.data.download import download
from a2i.params import load_section
from a2i.stage import run_stage

if __name__ == "__main__":
    run_stage(__doc__, lambda: download(**load_section("download")))
