"""DVC stage `train`: the conditional DDPM U-Net of one variant (resumes from its newest checkpoint).

Multi-GPU / multi-process: `torchrun --nproc_per_node N stages/train.py --variant V`.
"""

import argparse
import logging

from a2i.diffusion.train import train
from a2i.params import load_section

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True, help="<alignment>-<length>s[-nocfg|-pca], e.g. text-2s-pca")
    args = parser.parse_args()
    try:
        train(args.variant, load_section("train"))
    except (ValueError, FloatingPointError) as error:
        raise SystemExit(f"error: {error}") from None
