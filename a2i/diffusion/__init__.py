"""Conditional DDPM U-Net (thesis 3.3): model, schedule, training and guided sampling."""

# The U-Net's time-embedding width: the PCA projection (thesis 4.5) keeps this many components of the audio
# embedding. Here, so that the `check` stage reads it without importing torch.
EMB_DIM = 256
