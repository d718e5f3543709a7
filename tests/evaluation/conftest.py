from __future__ import annotations


import pytest

from a2i.evaluation.classifier import classify
from a2i.evaluation.fid import one_thread

from .helpers import make_prepared, random_inception_weights


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    """No test reads or fills the user's caches (real-image statistics, pytorch-fid's weights)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("prepared"), {"train": 12, "val": 3, "test": 4})


@pytest.fixture(scope="session")
def trained(prepared, tmp_path_factory):
    """(classifier path, metrics) of the classify stage run on the toy dataset."""
    out = tmp_path_factory.mktemp("classifier")
    with one_thread():
        metrics = classify(prepared, out / "classifier.pt", out / "classifier.json", epochs=8, batch_size=16,
                           lr=0.01, min_accuracy=0.99, seed=0)
    return out / "classifier.pt", metrics


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory):
    return random_inception_weights(tmp_path_factory.mktemp("inception") / "pt_inception-random.pth")
