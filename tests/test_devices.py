import subprocess
import sys

import pytest
import torch

from a2i.devices import claim_gpu, select_device, set_threads


def test_auto_falls_back_to_cpu(monkeypatch):
    assert select_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        select_device("cuda")


def test_concurrent_workers_get_distinct_gpus(tmp_path):
    # Another process holds gpu0's lock, as a second dvc queue worker would: we must get gpu1.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from a2i.devices import claim_gpu; print(claim_gpu(2, sys.argv[1]), flush=True);"
         " time.sleep(30)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        assert claim_gpu(2, tmp_path) == 1
        with pytest.raises(RuntimeError, match="all 2 GPUs are held"):
            claim_gpu(2, tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_set_threads_none_keeps_the_default():
    before = torch.get_num_threads()
    try:
        set_threads(None)
        assert torch.get_num_threads() == before
        set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
