"""Conditional DDPM U-Net (thesis 3.3): model, schedule, training and guided sampling."""
