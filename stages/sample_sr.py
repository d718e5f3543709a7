"""DVC stage `sample_sr`: the selected checkpoint's test images upsampled by the diffusion model and by bicubic."""

from dataclasses import asdict

from a2i.config import SampleSRConfig, load_grid_config, load_section_config
from a2i.diffusion.upsample import sample_sr
from a2i.stage import run_stage
from a2i.variants import grid


def upsample() -> None:
    config = load_section_config(SampleSRConfig)
    experiment = load_grid_config()
    sample_sr(config, grid(experiment.lengths, experiment.alignments, asdict(experiment.study)))


if __name__ == "__main__":
    run_stage(__doc__, upsample)
