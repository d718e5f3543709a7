"""Benchmark `prepare` on a synthetic tree with the real Sub-URMP per-instrument chunk counts (80,805 pairs).

Target (issue): all five lengths in < 10 min with peak RSS < 4 GiB. The tree (7.1 GB of WAVs at scale 1) is
built once under A2I_BENCH_DIR; A2I_BENCH_SCALE < 1 shrinks every count for a quicker run, A2I_BENCH_FRAME sets the
frame size (Sub-URMP's is 1920x1080; the default 160x90 builds the tree faster, and prepare then decodes less).

    A2I_BENCH_SCALE=0.1 pytest benchmarks/test_data_bench.py --benchmark-enable -s
    A2I_BENCH_FRAME=1920x1080 pytest benchmarks/test_data_bench.py --benchmark-enable -s   # the real size
"""

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from a2i.data.layout import INSTRUMENTS
from a2i.data.synthetic import write_performance

# Sub-URMP chunk counts, train / validation (jhkang0408/GCT634-Final-Project, see the facts file)
COUNTS = {"bassoon": (1735, 390), "cello": (9800, 1030), "clarinet": (8125, 945), "double_bass": (1270, 1180),
          "flute": (5690, 925), "horn": (5540, 525), "oboe": (4505, 390), "sax": (7615, 910),
          "trombone": (8690, 805), "trumpet": (1015, 520), "tuba": (3285, 525), "viola": (6530, 485),
          "violin": (7430, 945)}
TRAIN_PERFORMANCES = 3
SCALE = float(os.environ.get("A2I_BENCH_SCALE", "1"))
FRAME = os.environ.get("A2I_BENCH_FRAME", "160x90")
WIDTH, HEIGHT = (int(side) for side in FRAME.split("x"))
ROOT = Path(os.environ.get("A2I_BENCH_DIR", "/tmp/a2i_bench")) / f"scale_{SCALE:g}_{FRAME}" / "Sub-URMP"


def _chunks_per_performance(total: int, performances: int) -> list[int]:
    total = max(performances, int(round(total * SCALE)))
    base = total // performances
    return [base + (i < total % performances) for i in range(performances)]


def build_tree(root: Path) -> int:
    """Write the tree once (marker file `.complete`); returns the number of pairs."""
    pairs = 0
    jobs = []
    for instrument in INSTRUMENTS:
        train, validation = COUNTS[instrument]
        sizes = _chunks_per_performance(train, TRAIN_PERFORMANCES) + _chunks_per_performance(validation, 1)
        for number, chunks in enumerate(sizes):
            split = "train" if number < TRAIN_PERFORMANCES else "validation"
            jobs.append((split, instrument, number, chunks))
            pairs += chunks
    if not (root / ".complete").exists():
        start = time.perf_counter()
        for split, instrument, number, chunks in tqdm(jobs, desc="synthesize", unit="performance"):
            write_performance(root, split, instrument, number, seed=0, seconds=(chunks + 4) / 10,
                              width=WIDTH, height=HEIGHT)
        (root / ".complete").write_text(str(pairs))
        print(f"\nsynthesize: {pairs} pairs ({FRAME} frames) in {time.perf_counter() - start:.1f} s, "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    return pairs


def test_prepare_real_counts(benchmark, tmp_path):
    pairs = build_tree(ROOT)
    out = tmp_path / "prepared"
    code = ("import logging, sys; logging.basicConfig(level=logging.WARNING);"
            "from a2i.data.prepare import prepare; prepare(sys.argv[1], sys.argv[2], [1, 2, 3, 4, 5])")

    def run():
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, str(ROOT), str(out)], check=True)
        return time.perf_counter() - start

    seconds = benchmark.pedantic(run, rounds=1, iterations=1)
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    counts = pd.read_csv(out / "counts.csv")
    found = counts[counts.split.str.startswith("original")].samples.sum()
    print(f"\nprepare: {pairs} pairs (scale {SCALE:g}, {FRAME} frames), 5 lengths: {seconds:.1f} s, "
          f"peak RSS {peak_gib:.2f} GiB")
    assert found == pairs
    if SCALE == 1:
        assert seconds < 600 and peak_gib < 4
