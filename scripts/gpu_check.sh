#!/usr/bin/env bash
# GPU checks on a CUDA machine, in one call of at most 10 minutes (each part time-boxed, see PART_SECONDS; the
# parts' lengths on a GPU are estimates until a lent machine measures them):
#   0. setup: installs what the GPU image lacks (see below) and this package (`pip install -e . --no-deps`);
#   1. tests: the CUDA tests (bf16 + channels_last, training with data on the GPU, eager and compiled, seeded
#      sampling, the graph training step against the eager one over 200 steps, graph DDPM-1000 samples against
#      eager ones);
#   2. throughput of the exact thesis recipe (benchmarks/gpu_throughput.py, each training rate over 5 s):
#      training images/s at batch 12, eager
#      vs the CUDA-graph step; aggregate images/s of 1, 2, 4, 8 co-located training processes (A2I_GPU_SLOTS=8);
#      DDPM-1000 + CFG images/s, eager vs graph, at the best batch of a short sweep; evaluation images/s; the thesis
#      grid's projected hours, the hardware limit and each path's FLOPs utilisation (A2I_THROUGHPUT_ARGS="--parts
#      recipe stages" adds the per-stage figures of RESULTS' "GPU: one H100", which need a call of their own);
#   3. smoke: the thesis-size smoke run `dvc exp run -S profile=smoke` on a fresh copy of the repository, every
#      model stage (finetune, embed, train, sample, classify, evaluate, and the super-resolution ones) on the GPU;
#      then one table: stage, wall time, device, peak host memory, peak GPU memory (the `resources:` line each
#      stage logs at its end).
# Every part runs even if another fails; the exit status is the first failure's. Each part's log, the CUDA tests'
# JUnit XML and the machine's description (env.txt) are written to $OUT (the device tool brings them back) or,
# without it, /tmp/a2i-gpu.
# Usage: scripts/gpu_check.sh [python]   (default: .venv/bin/python, else python3)
#        A2I_GPU_CHECKS="tests throughput smoke" (the default) picks the parts; setup always runs.
#        scripts/gpu_check.sh --summary LOG [python]: only the table of a logged run (no GPU needed).
#
# Offline setup: the GPU image has torch, torchvision, torchaudio, numpy, pandas, pytest and more, but lacks
# diffusers, dvc, dvclive, open_clip_torch, hydra-core, soundfile, pooch, pytorch-fid and pretty_midi, and reaches
# no package index. Bring them as wheels: `.venv/bin/python scripts/gpu_wheels.py` here writes them to .whl/
# (gitignored; about 34 MiB) at the versions the tests pass with; name `.whl` in the device call's carry. Setup
# installs only the missing ones, from .whl/ (--no-index) when it exists, else from the package index.
set -uo pipefail
SUMMARY_ONLY=""
if [ "${1:-}" = "--summary" ]; then SUMMARY_ONLY="$(realpath "${2:?--summary needs a log file}")"; shift 2; fi
cd "$(dirname "$0")/.."
PY="${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
PY="$("$PY" -c 'import sys; print(sys.executable)')" || exit 1  # absolute: the smoke run works in another folder
CHECKS="${A2I_GPU_CHECKS:-tests throughput smoke}"
OUTDIR="${OUT:-/tmp/a2i-gpu}"
# seconds per part (A2I_<PART>_S overrides): with setup (under a minute from .whl/) inside one 10-minute call
declare -A PART_SECONDS=([tests]=${A2I_TESTS_S:-110} [throughput]=${A2I_THROUGHPUT_S:-170} [smoke]=${A2I_SMOKE_S:-200})

setup() {
    local missing
    missing=$("$PY" - <<'EOF'
import importlib.util
need = {"diffusers": "diffusers", "dvc": "dvc", "dvclive": "dvclive", "open_clip": "open_clip_torch",
        "hydra": "hydra-core", "soundfile": "soundfile", "pooch": "pooch", "pytorch_fid": "pytorch-fid",
        "pretty_midi": "pretty_midi", "torchaudio": "torchaudio", "pandas": "pandas", "scipy": "scipy",
        "matplotlib": "matplotlib", "click": "click", "tqdm": "tqdm", "yaml": "pyyaml", "PIL": "pillow",
        "pytest": "pytest", "pytest_benchmark": "pytest-benchmark"}
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
    return "${PIPESTATUS[0]}"
}

# "$@" in a session of its own, ended with all its processes after $1 seconds; `timeout` would end only the
# command itself, not the DVC stages or workers it started.
run_boxed() {
    local seconds=$1 marker
    shift
    marker="$(mktemp -u)"
    setsid "$@" &
    local pid=$!
    (
        trap 'kill "$nap" 2>/dev/null; exit' TERM
        sleep "$seconds" & nap=$!
        wait "$nap"
        touch "$marker"
        kill -TERM -- "-$pid"
        sleep 5 & nap=$!  # a grace period for clean-ups, then SIGKILL
        wait "$nap"
        kill -KILL -- "-$pid"
    ) >/dev/null 2>&1 &
    local watchdog=$!
    wait "$pid"
    local rc=$?
    kill "$watchdog" 2>/dev/null
    wait "$watchdog" 2>/dev/null
    if [ -e "$marker" ]; then
        rm -f "$marker"
        echo "error: stopped after $seconds s"
        [ $rc -ne 0 ] || rc=124
    fi
    return $rc
}

# The resources table of a logged run; fails if a model stage ran on the CPU.
summarize() {
    "$PY" -m a2i.resources "$1" || return 1
    if grep -E 'resources: stage=(finetune|embed|train|sample|classify|evaluate)(_sr)?[@ ].* device=cpu' "$1"; then
        echo "error: the model stages above ran on the CPU"
        return 1
    fi
}

if [ -n "$SUMMARY_ONLY" ]; then summarize "$SUMMARY_ONLY"; exit; fi
mkdir -p "$OUTDIR" || exit 1
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: CUDA is not available')" || exit 1
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; "$PY" -V; } \
    2>&1 | tee "$OUTDIR/env.txt"
status=0
record() { local s=$?; [ $status -ne 0 ] || status=$s; }
setup 2>&1 | tee "$OUTDIR/setup.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "error: setup failed ($OUTDIR/setup.log)"; exit 1; }
"$PY" -m pip freeze >>"$OUTDIR/env.txt" 2>&1
export PYTHONUNBUFFERED=1
for check in $CHECKS; do
    seconds=${PART_SECONDS[$check]:-}
    [ -n "$seconds" ] || { echo "error: unknown check '$check' (tests, throughput, smoke)"; status=2; continue; }
    echo "== $check (at most $seconds s)"
    case $check in
        # addopts without --benchmark-disable: pytest-benchmark need not be installed for these
        tests) run_boxed "$seconds" "$PY" -m pytest benchmarks/test_diffusion_cuda.py -m cuda -q -p no:cacheprovider \
                   -o addopts=-ra --junitxml="$OUTDIR/cuda-tests.xml" 2>&1 | tee "$OUTDIR/tests.log" ;;
        # shellcheck disable=SC2086  # one word per argument
        throughput) run_boxed "$seconds" "$PY" benchmarks/gpu_throughput.py ${A2I_THROUGHPUT_ARGS:---seconds 5} 2>&1 |
                        tee "$OUTDIR/throughput.log" ;;
        smoke) run_boxed "$seconds" bash -c "$(declare -f smoke); PY='$PY' smoke '$OUTDIR/smoke.log'" ;;
    esac
    (exit "${PIPESTATUS[0]}") || record
    # the table of the stages that ran, even when the time box ended the run
    [ "$check" != smoke ] || summarize "$OUTDIR/smoke.log" || record
done
exit $status
