"""DVC stage `sample`: images from every checkpoint of one variant for the test conditions."""

from a2i.config import SampleConfig, load_section_config
from a2i.diffusion.sample import sample_variant
from a2i.stage import Option, run_stage

if __name__ == "__main__":
    run_stage(__doc__, lambda variant: sample_variant(variant, load_section_config(SampleConfig)),
              Option("variant", "<alignment>-<length>s[-nocfg|-pca|-nonorm], e.g. text-2s"))
