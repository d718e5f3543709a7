"""DVC stages `sample` and `sample_cfg`: images from every checkpoint of one variant for the test conditions, or
the CFG sweep's other scales at one checkpoint."""

from a2i.config import SampleConfig, load_section_config
from a2i.diffusion.sample import sample_cfg_sweep, sample_variant
from a2i.stage import Option, run_stage

SAMPLERS = {"main": sample_variant, "cfg": sample_cfg_sweep}


def sample(variant: str, guidance: str) -> None:
    SAMPLERS[guidance](variant, load_section_config(SampleConfig))


if __name__ == "__main__":
    run_stage(__doc__, sample, Option("variant", "<alignment>-<length>s[-nocfg|-pca|-nonorm], e.g. text-2s"),
              Option("guidance", "main: sample.guidance at every checkpoint (1 for nocfg); cfg: the CFG sweep's other "
                                 "sample.cfg_scales at the sample.cfg_epoch checkpoint", "main", tuple(SAMPLERS)))
