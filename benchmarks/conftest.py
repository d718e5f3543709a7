"""Fixtures shared by the benchmarks."""

import os

import pytest
import torch


@pytest.fixture
def report_embedding_rate(benchmark):
    """`report(n, label)`: record and print `n` embeddings per median round of `benchmark` as embeddings/s, with
    the threads and load average beside it, since on this shared CPU a figure means little without them."""

    def report(n: int, label: str) -> None:
        if benchmark.stats is None:  # None under --benchmark-disable (the default test run)
            return
        per_second = n / benchmark.stats.stats.median
        threads, load = torch.get_num_threads(), os.getloadavg()[0]
        benchmark.extra_info.update(embeddings_per_s=round(per_second, 2), threads=threads,
                                    load_avg_1min=round(load, 2))
        print(f"\n{label}: {per_second:.2f} embeddings/s ({1000 / per_second:.1f} ms each; {threads} threads, "
              f"load {load:.1f})")

    return report
