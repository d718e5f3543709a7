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
    with pytest.raises(ValueError, match="'cuda:1': CUDA is not available"):  # a named GPU is checked, not claimed
        select_device("cuda:1")


CLAIM = "import sys; from a2i.devices import claim_gpu; print(claim_gpu(2, sys.argv[1]), flush=True)"


def test_concurrent_workers_get_distinct_gpus(tmp_path):
    # Another process holds gpu0's lock, as a second dvc queue worker would: we must get gpu1, and keep it when
    # we ask again (a stage that trains twice); a third process finds both taken.
    holder = subprocess.Popen([sys.executable, "-c", CLAIM + "; import time; time.sleep(30)", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        assert claim_gpu(2, tmp_path) == 1
        assert claim_gpu(2, tmp_path) == 1
        third = subprocess.run([sys.executable, "-c", CLAIM, str(tmp_path)], capture_output=True, text=True)
        assert third.returncode != 0 and "all 2 GPUs are held" in third.stderr
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
