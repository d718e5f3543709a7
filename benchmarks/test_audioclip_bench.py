"""Audio embeddings per second of the thesis-size AudioCLIP audio head on this CPU.

Baseline (facts file): the reference head takes ~0.6 s for one 1 s clip (eval, no_grad, 2 threads). Ours
reuses the fbsp filter bank between calls without autograd and runs batches under inference mode.

    A2I_BENCH_THREADS=1 pytest benchmarks/test_audioclip_bench.py --benchmark-enable -s

On a shared 2-core machine one thread is the stable setting: two threads under contention spin and run
several times slower.
"""

import os

import pytest
import torch

from a2i.audioclip import AudioCLIP

SR = 44100


@pytest.fixture(scope="module")
def head():
    torch.set_num_threads(int(os.environ.get("A2I_BENCH_THREADS", torch.get_num_threads())))
    torch.manual_seed(0)
    return AudioCLIP("thesis").audio.eval()


def clips(batch: int, seconds: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(batch, 1, seconds * SR, generator=g) * 2 - 1) * 12000


@pytest.mark.parametrize("seconds", [1, 4])
@pytest.mark.parametrize("batch, mode", [(1, "no_grad"), (8, "inference"), (8, "inference+channels_last")])
def test_thesis_audio_embeddings_per_second(benchmark, report_embedding_rate, head, seconds, batch, mode):
    x = clips(batch, seconds)
    memory_format = torch.channels_last if mode.endswith("channels_last") else torch.contiguous_format
    head.to(memory_format=memory_format)
    context = torch.no_grad if mode == "no_grad" else torch.inference_mode

    def run():
        with context():
            return head(x)

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    head.to(memory_format=torch.contiguous_format)
    assert out.shape == (batch, 1024)
    report_embedding_rate(batch, f"{seconds} s clips, batch {batch}, {mode}")
