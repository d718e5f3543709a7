"""a2i: reproducible audio-to-image generation (AudioCLIP embeddings -> conditional DDPM U-Net)."""

__version__ = "0.1.0"
