#!/usr/bin/env bash
# GPU checks on a CUDA machine, in one go (a few minutes on one H100):
#   1. throughput of the thesis profile, stage by stage (benchmarks/gpu_throughput.py): fine-tuning seconds per
#      step, embeddings/s, U-Net training images/s (bf16; eager and torch.compile; batch 12 and 128), seconds to
#      draw 5,000 images with dpmpp-25 + CFG, and the thesis-grid runtimes these rates give;
#   2. the CUDA tests (bf16 + channels_last, training with data on the GPU, eager and compiled, seeded sampling).
# Both run even if one fails; the exit status is the first failure's.
# Usage: scripts/gpu_check.sh [python]   (default: .venv/bin/python, else python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: CUDA is not available')" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
status=0
"$PY" benchmarks/gpu_throughput.py || status=$?
"$PY" -m pytest benchmarks/test_diffusion_cuda.py -m cuda -q -p no:cacheprovider || { s=$?; [ $status -ne 0 ] || status=$s; }
exit $status
