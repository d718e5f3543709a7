#!/usr/bin/env bash
# Diffusion checks on a CUDA machine, in one go (a few minutes on one H100):
#   1. the CUDA tests (bf16 + channels_last, training with data on the GPU, eager and compiled, seeded sampling),
#   2. training images/s of the thesis U-Net (bf16; eager and torch.compile; batch 12 and 128),
#   3. seconds to draw 5,000 images with dpmpp-25 + classifier-free guidance.
# Usage: scripts/gpu_check.sh [python]   (default: .venv/bin/python, else python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: CUDA is not available')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -m pytest benchmarks/test_diffusion_cuda.py -m cuda -q -p no:cacheprovider
"$PY" benchmarks/diffusion_gpu_throughput.py
