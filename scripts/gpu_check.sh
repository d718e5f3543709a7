#!/usr/bin/env bash
# GPU checks on a CUDA machine, in one go (within 8 min on one H100):
#   0. setup: installs what a bare GPU image lacks (see below) and this package (`pip install -e . --no-deps`);
#   1. smoke: the thesis-size smoke run `dvc exp run -S profile=smoke` on a fresh copy of the repository, every
#      model stage (finetune, embed, train, sample, classify, evaluate) on the GPU; then one table: stage, wall
#      time, device, peak host memory, peak GPU memory (the `resources:` line each stage logs at its end);
#   2. throughput of the exact thesis recipe (benchmarks/gpu_throughput.py, under 8 min on one H100): training
#      images/s at batch 12, eager vs the CUDA-graph step; aggregate images/s of 1, 2, 4, 8 co-located training
#      processes (A2I_GPU_SLOTS=8); DDPM-1000 + CFG images/s, eager vs graph, at the best batch of a short sweep;
#      evaluation images/s; the thesis grid's projected hours, the hardware limit and each path's FLOPs utilisation
#      (A2I_THROUGHPUT_ARGS="--parts recipe stages" adds the per-stage figures of RESULTS' "GPU: one H100");
#   3. the CUDA tests (bf16 + channels_last, training with data on the GPU, eager and compiled, seeded sampling,
#      the graph training step against the eager one over 200 steps, graph DDPM-1000 samples against eager ones).
# Every part runs even if another fails; the exit status is the first failure's.
# Usage: scripts/gpu_check.sh [python]   (default: .venv/bin/python, else python)
#        A2I_GPU_CHECKS="smoke throughput tests" (the default) picks the parts; setup always runs.
#        scripts/gpu_check.sh --summary LOG [python]: only the table of a logged run (no GPU needed).
#
# Offline setup: the GPU image has torch with CUDA (and torchvision) but may lack diffusers, dvc, dvclive,
# open_clip_torch, hydra-core, soundfile, pooch and pytorch-fid. With no network there, bring them as wheels in
# .whl/ (gitignored; carry it with the working tree), downloaded on a machine with the GPU image's Python version
# and platform, without what the image already has:
#   pip download -d .whl diffusers dvc dvclive open_clip_torch hydra-core soundfile pooch pytorch-fid pytest
#   rm -f .whl/torch-* .whl/torchvision-* .whl/nvidia_* .whl/triton-*
# Setup installs only the missing ones, from .whl/ (--no-index) when it exists, else from the package index;
# --no-build-isolation lets the few source-only dependencies (hydra's antlr4 runtime) build offline.
set -uo pipefail
SUMMARY_ONLY=""
if [ "${1:-}" = "--summary" ]; then SUMMARY_ONLY="$(realpath "${2:?--summary needs a log file}")"; shift 2; fi
cd "$(dirname "$0")/.."
PY="${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
PY="$("$PY" -c 'import sys; print(sys.executable)')" || exit 1  # absolute: the smoke run works in another folder
CHECKS="${A2I_GPU_CHECKS:-smoke throughput tests}"

setup() {
    local missing
    missing=$("$PY" - <<'EOF'
import importlib.util
need = {"diffusers": "diffusers", "dvc": "dvc", "dvclive": "dvclive", "open_clip": "open_clip_torch",
        "hydra": "hydra-core", "soundfile": "soundfile", "pooch": "pooch", "pytorch_fid": "pytorch-fid",
        "pandas": "pandas", "scipy": "scipy", "matplotlib": "matplotlib", "click": "click", "tqdm": "tqdm",
        "yaml": "pyyaml", "PIL": "pillow", "pytest": "pytest"}
print(" ".join(dist for module, dist in need.items() if importlib.util.find_spec(module) is None))
EOF
    ) || return 1
    local source=()
    [ -d .whl ] && source=(--no-index --find-links .whl)
    if [ -n "$missing" ]; then
        echo "setup: installing $missing ${source[*]}"
        # shellcheck disable=SC2086  # one word per package
        "$PY" -m pip install -q "${source[@]}" --no-build-isolation $missing || return 1
    fi
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . || return 1
}

# The smoke experiment on a fresh copy (its own git repository, no outputs, no dvc.lock), logged to $1.
smoke() {
    local log="$1" copy
    copy="$(mktemp -d)/a2i" && mkdir -p "$copy" || return 1
    tar -cf - --exclude=./.git --exclude=./.venv --exclude=./.whl --exclude=./data --exclude=./models \
        --exclude=./metrics --exclude=./report --exclude=./plots --exclude=./dvclive --exclude=./.dvc/tmp \
        --exclude=./.dvc/cache . | tar -xf - -C "$copy" || return 1
    rm -f "$copy/dvc.lock"
    export DVC_NO_ANALYTICS=1 DVC_SITE_CACHE_DIR="$copy/../site-cache"
    export GIT_AUTHOR_NAME=a2i GIT_AUTHOR_EMAIL=a2i@a2i.invalid  # a bare machine may have no git identity
    export GIT_COMMITTER_NAME=a2i GIT_COMMITTER_EMAIL=a2i@a2i.invalid
    (cd "$copy" && git init -q && git add -A && git commit -qm smoke) || return 1
    # stage commands call `python`: this one, with the copy's a2i
    (cd "$copy" && PATH="$(dirname "$PY"):$PATH" PYTHONPATH="$copy" "$PY" -m dvc exp run -S profile=smoke) 2>&1 |
        tee "$log"
    local run=${PIPESTATUS[0]}
    summarize "$log" || return 1
    return "$run"
}

# The resources table of a logged run; fails if a model stage ran on the CPU.
summarize() {
    "$PY" -m a2i.resources "$1" || return 1
    if grep -E 'resources: stage=(finetune|embed|train|sample|classify|evaluate)[@ ].* device=cpu' "$1"; then
        echo "error: the model stages above ran on the CPU"
        return 1
    fi
}

if [ -n "$SUMMARY_ONLY" ]; then summarize "$SUMMARY_ONLY"; exit; fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: CUDA is not available')" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
status=0
record() { local s=$?; [ $status -ne 0 ] || status=$s; }
setup || { echo "error: setup failed"; exit 1; }
for check in $CHECKS; do
    echo "== $check"
    case $check in
        smoke) smoke "${A2I_SMOKE_LOG:-/tmp/a2i-smoke.log}" || record ;;
        # shellcheck disable=SC2086  # one word per argument
        throughput) "$PY" benchmarks/gpu_throughput.py ${A2I_THROUGHPUT_ARGS:-} || record ;;
        tests) "$PY" -m pytest benchmarks/test_diffusion_cuda.py -m cuda -q -p no:cacheprovider || record ;;
        *) echo "error: unknown check '$check' (smoke, throughput, tests)"; status=2 ;;
    esac
done
exit $status
