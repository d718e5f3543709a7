"""Fixtures of the diffusion tests."""

from pathlib import Path

import pytest
import torch

from .helpers import make_root


@pytest.fixture(autouse=True)
def one_thread():
    """The shared 2-core machine: one intra-op thread is several times faster than two under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path)
