"""a2i: reproducible audio-to-image generation (AudioCLIP embeddings -> conditional DDPM U-Net)."""

from a2i.kernels import pin_cpu_kernels

__version__ = "0.1.0"
MAX_SEED = 2**32 - 1  # every seed, params.yaml's and the commands': with the stages' offsets it fits every generator
MAX_BATCH = 4096  # every batch size and image count, params.yaml's and the commands': beyond it, out of memory

pin_cpu_kernels()  # before any a2i module imports torch: the same bytes on every x86-64 CPU (a2i/kernels.py)
