"""Evaluate 5,000 generated images on this CPU: classifier predictions + fid_classifier features against the
real train and test sets (tiny-profile sizes: 5,096 / 793 real images, statistics not cached), bootstrap 1000.

Target (issue): under 3 minutes. The Inception path is measured as throughput only: pytorch-fid's InceptionV3
at 299x299 is far too slow for 5,000 images on 2 CPU cores (RESULTS.md, "Inception path").

    A2I_BENCH_THREADS=1 pytest benchmarks/test_evaluation_bench.py --benchmark-enable -s
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from a2i.evaluation.classifier import InstrumentClassifier, save_classifier
from a2i.evaluation.evaluate import evaluate_variant
from a2i.evaluation.fid import InceptionFeatures

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from evaluation.helpers import make_prepared, random_inception_weights, toy_images, write_samples  # noqa: E402

IMAGES = int(os.environ.get("A2I_BENCH_IMAGES", "5000"))


@pytest.fixture(scope="module", autouse=True)
def threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("A2I_BENCH_THREADS", previous)))
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation-bench")
    prepared = make_prepared(root / "prepared", {"train": 392, "val": 1, "test": 61})
    torch.manual_seed(0)
    save_classifier(root / "classifier.pt", InstrumentClassifier(), {})  # timing does not depend on the weights
    labels = np.arange(IMAGES) % 13
    write_samples(root / "samples", 6, 3.0, 0, toy_images(labels, seed=1), labels)
    return root, prepared


def test_evaluate_5000_generated_images(benchmark, workspace, monkeypatch):
    root, prepared = workspace
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))

    def run():
        for cached in (root / "cache").rglob("*.npz"):
            cached.unlink()  # real-image statistics computed afresh every round
        return evaluate_variant("text-2s", prepared, root / "samples", root / "classifier.pt", root / "metrics",
                                root / "plots", None, 1000, 100, 0)

    start = time.perf_counter()
    (metrics,) = benchmark.pedantic(run, rounds=1, iterations=1)
    elapsed = time.perf_counter() - start
    print(f"\nevaluate {IMAGES} images: {elapsed:.1f} s")
    assert metrics["n_images"] == IMAGES and metrics["feature_extractor"] == "classifier_penultimate"
    assert elapsed < 180


def test_inception_throughput(benchmark, tmp_path):
    extract = InceptionFeatures(random_inception_weights(tmp_path / "inception.pth"), batch_size=50)
    images = toy_images(np.arange(50) % 13, seed=2)
    start = time.perf_counter()
    features = benchmark.pedantic(extract, args=(images,), rounds=1, iterations=1)
    per_image = (time.perf_counter() - start) / len(images)
    print(f"\ninception pool3: {per_image:.3f} s/image, {per_image * IMAGES / 60:.1f} min for {IMAGES} images")
    assert features.shape == (len(images), 2048)
