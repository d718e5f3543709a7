"""DVC stage `train_sr`: the diffusion super-resolution model on real low/high-resolution pairs (thesis 6.2)."""

from a2i.config import TrainSRConfig, load_section_config
from a2i.diffusion.superres import train_sr
from a2i.stage import run_stage

if __name__ == "__main__":
    run_stage(__doc__, lambda: train_sr(load_section_config(TrainSRConfig)), errors=(FloatingPointError,))
