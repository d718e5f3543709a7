"""Suite-wide settings: offline DVC, and one torch thread per xdist worker (two workers share two cores); the
fresh repository copy of the end-to-end DVC tests."""

import os
from pathlib import Path

import pytest
import torch
from project_copy import copy_project

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh git repository holding this project's files, no outputs (tests/project_copy.py)."""
    return copy_project(tmp_path_factory.mktemp("clone") / "a2i")
