"""DVC stage `synthesize`: the embedded synthetic Sub-URMP (default data source)."""

from a2i.config import SynthesizeConfig, load_section_config
from a2i.data.synthetic import synthesize
from a2i.stage import run_stage
from a2i.variants import SYNTHETIC

if __name__ == "__main__":
    run_stage(__doc__, lambda: synthesize(SYNTHETIC, **load_section_config(SynthesizeConfig).kwargs()))
