"""Embeddings per second of the `embed` stage path (packed dataset -> fine-tuned audio head) on this CPU.

Measures `embed_audio` over a `PreparedDataset` (memory-mapped reads included) with the encoder that
`load_audio_encoder` returns from a saved heads file, for the thesis profile at 1 s and 4 s (the issue's
figures) and the tiny model size of the default run at 1 s and 2 s.

    A2I_BENCH_THREADS=1 pytest benchmarks/test_embed_bench.py --benchmark-enable -s
"""

import os

import numpy as np
import pandas as pd
import pytest
import torch

from a2i.audioclip import AudioCLIP
from a2i.audioclip.embed import embed_audio, load_audio_encoder
from a2i.audioclip.finetune import heads_state
from a2i.data.dataset import PreparedDataset
from a2i.data.layout import SAMPLE_RATE
from a2i.io import save_torch

SAMPLES = {"thesis": 8, "tiny": 256}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Per profile, a packed folder of random int16 audio with SAMPLES[profile] test samples of each length."""
    roots = {}
    for profile, n in SAMPLES.items():
        root = roots[profile] = tmp_path_factory.mktemp(profile)
        rng = np.random.default_rng(0)
        np.save(root / "tracks.npy", rng.integers(-12000, 12000, 300 * SAMPLE_RATE, dtype=np.int16))
        np.save(root / "images.npy", np.zeros((1, 64, 64, 3), np.uint8))
        for length in (1, 2, 4):
            starts = rng.integers(0, (300 - length) * SAMPLE_RATE, n)
            pd.DataFrame({"performance": "violin00", "instrument": "violin", "label": 12, "start": starts,
                          "image": 0}).to_csv(root / f"index_{length}s_test.csv", index=False)
    return roots


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    torch.set_num_threads(int(os.environ.get("A2I_BENCH_THREADS", torch.get_num_threads())))
    folder = tmp_path_factory.mktemp("heads")
    loaded = {}
    for profile in SAMPLES:
        torch.manual_seed(0)
        save_torch(folder / f"{profile}.pt", heads_state(AudioCLIP(profile), "text", 1, pretrained=False))
        loaded[profile] = load_audio_encoder(folder / f"{profile}.pt")
    return loaded


@pytest.mark.parametrize("profile, seconds", [("thesis", 1), ("thesis", 4), ("tiny", 1), ("tiny", 2)])
def test_embeddings_per_second(benchmark, report_embedding_rate, prepared, encoders, profile, seconds):
    data = PreparedDataset(prepared[profile], seconds, "test")
    n = len(data)
    batch_size = 8 if profile == "thesis" else 32  # thesis: memory-bound beyond 8; tiny: the default embed.batch_size
    out = benchmark.pedantic(embed_audio, args=(encoders[profile], data, batch_size), rounds=3, warmup_rounds=1)
    assert out.shape == (n, 1024) and out.dtype == np.float32
    report_embedding_rate(n, f"{profile} {seconds} s, batch {batch_size}")
