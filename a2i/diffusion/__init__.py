"""Conditional DDPM U-Net (thesis 3.3): model, schedule, training and guided sampling."""

# The U-Net's time-embedding width: the PCA projection (thesis 4.5) keeps this many components of the audio
# embedding. Here, so that the `check` stage reads it without importing torch.
EMB_DIM = 256


def checkpoint_schedule(epochs: int, every: int) -> list[int]:
    """The checkpoint epochs of a training run: every `every`-th epoch, and the last."""
    return sorted({*range(every, epochs + 1, every), epochs})
