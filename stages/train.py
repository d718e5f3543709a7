"""DVC stage `train`: the conditional DDPM U-Net of one variant (resumes from its newest checkpoint).

Multi-GPU / multi-process: `torchrun --nproc_per_node N stages/train.py --variant V`.
"""

from a2i.config import TrainConfig, load_section_config
from a2i.diffusion.train import train
from a2i.stage import Option, run_stage

if __name__ == "__main__":
    run_stage(__doc__, lambda variant: train(variant, load_section_config(TrainConfig)),
              Option("variant", "<alignment>-<length>s[-nocfg|-pca|-nonorm], e.g. text-2s-pca"),
              errors=(FloatingPointError,))
