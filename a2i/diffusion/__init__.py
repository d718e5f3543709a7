"""Conditional DDPM U-Net (thesis 3.3): model, schedule, training and guided sampling."""

from a2i.diffusion.sample import load_generator, sample
from a2i.diffusion.schedule import Schedule
from a2i.diffusion.unet import UNet

__all__ = ["UNet", "Schedule", "sample", "load_generator"]
