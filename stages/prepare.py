"""DVC stage `prepare`: Sub-URMP chunk/frame pairs -> packed samples of every length (thesis 4.2.1)."""

from a2i.config import PrepareConfig, load_section_config
from a2i.data.prepare import prepare
from a2i.stage import run_stage
from a2i.variants import COUNTS, PREPARED

if __name__ == "__main__":
    run_stage(__doc__, lambda: prepare(out=PREPARED, metrics=COUNTS, **load_section_config(PrepareConfig).kwargs()))
