"""Suite-wide settings: offline DVC, and one torch thread per xdist worker (two workers share two cores)."""

import os

import torch

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
