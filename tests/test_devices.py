import multiprocessing
import subprocess
import sys
from collections import Counter

import pytest
import torch

from a2i.devices import SLOTS_ENV, claim_gpu, gpu_slots, select_device, set_threads


def test_auto_falls_back_to_cpu(monkeypatch):
    assert select_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="CUDA is not available"):  # a stage's one-line error
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


def _hold_slot(slots: int, lock_dir: str, claims) -> None:
    """A queue worker: claims a slot of 2 (fake) GPUs, reports its GPU index or the error, holds it until killed."""
    import os
    import time

    os.environ[SLOTS_ENV] = str(slots)
    try:
        claims.put(claim_gpu(2, lock_dir))
    except ValueError as error:
        claims.put(str(error))
        return
    time.sleep(60)


def test_each_gpu_takes_n_processes_and_never_more(tmp_path):
    # 3 slots x 2 GPUs: six processes started at once (racing for the locks) get three per GPU, a seventh gets
    # the clear error; a killed holder's slot goes to the next process.
    context = multiprocessing.get_context("fork")  # the workers only take file locks
    claims = context.Queue()

    def start():
        worker = context.Process(target=_hold_slot, args=(3, str(tmp_path), claims))
        worker.start()
        return worker

    workers = [start() for _ in range(6)]
    try:
        held = [claims.get(timeout=30) for _ in workers]
        assert Counter(held) == {0: 3, 1: 3}
        assert sorted(path.name for path in tmp_path.iterdir()) == [f"gpu{i}.slot{j}.lock" for i in (0, 1)
                                                                    for j in range(3)]
        extra = start()
        message = claims.get(timeout=30)
        extra.join(30)
        assert "all 2 GPUs are held by other a2i processes, 3 per GPU (A2I_GPU_SLOTS" in message
        workers[held.index(1)].kill()
        workers[held.index(1)].join(30)
        workers.append(start())
        assert claims.get(timeout=30) == 1
    finally:
        for worker in workers:
            worker.kill()
            worker.join(30)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_bad_slot_count_is_a_one_line_error(monkeypatch, value):
    monkeypatch.setenv(SLOTS_ENV, value)
    with pytest.raises(ValueError, match=f"^A2I_GPU_SLOTS={value!r} must be an integer >= 1 "):
        gpu_slots()


def test_slots_default_to_one(monkeypatch):
    monkeypatch.delenv(SLOTS_ENV, raising=False)
    assert gpu_slots() == 1
    monkeypatch.setenv(SLOTS_ENV, "8")
    assert gpu_slots() == 8


def test_set_threads_none_keeps_the_default():
    before = torch.get_num_threads()
    try:
        set_threads(None)
        assert torch.get_num_threads() == before
        set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
