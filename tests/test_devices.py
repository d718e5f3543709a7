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


GPUS = ["GPU-a", "GPU-b"]  # two GPUs' UUIDs
CLAIM = f"import sys; from a2i.devices import claim_gpu; print(claim_gpu({GPUS!r}, sys.argv[1]), flush=True)"


def test_concurrent_workers_get_distinct_gpus(tmp_path):
    # Another process holds gpu0's lock, as a second dvc queue worker would: we must get gpu1, and keep it when
    # we ask again (a stage that trains twice); a third process finds both taken.
    holder = subprocess.Popen([sys.executable, "-c", CLAIM + "; import time; time.sleep(30)", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        assert claim_gpu(GPUS, tmp_path) == 1
        assert claim_gpu(GPUS, tmp_path) == 1
        third = subprocess.run([sys.executable, "-c", CLAIM, str(tmp_path)], capture_output=True, text=True)
        assert third.returncode != 0 and "all 2 GPUs are held" in third.stderr
    finally:
        holder.kill()
        holder.wait()


def _hold_slot(slots: int, lock_dir: str, claims, worker: int) -> None:
    """Queue worker number `worker`: claims a slot of 2 (fake) GPUs, reports (worker, its GPU index or the error),
    holds it until killed."""
    import os
    import time

    os.environ[SLOTS_ENV] = str(slots)
    try:
        claims.put((worker, claim_gpu(GPUS, lock_dir)))
    except ValueError as error:
        claims.put((worker, str(error)))
        return
    time.sleep(60)


def test_each_gpu_takes_n_processes_and_never_more(tmp_path):
    # 3 slots x 2 GPUs: six processes started at once (racing for the locks) get three per GPU, a seventh gets
    # the clear error; a killed holder's slot goes to the next process.
    context = multiprocessing.get_context("fork")  # the workers only take file locks
    claims = context.Queue()

    workers = []

    def start():
        worker = context.Process(target=_hold_slot, args=(3, str(tmp_path), claims, len(workers)))
        worker.start()
        workers.append(worker)

    for _ in range(6):
        start()
    try:
        held = dict(claims.get(timeout=30) for _ in range(6))  # worker -> GPU, in the order the claims arrived
        assert Counter(held.values()) == {0: 3, 1: 3}
        assert sorted(path.name for path in tmp_path.iterdir()) == [f"gpu-{gpu}.slot{j}.lock" for gpu in GPUS
                                                                    for j in range(3)]
        start()
        _, message = claims.get(timeout=30)
        workers[-1].join(30)
        assert "all 2 GPUs are held by other a2i processes, 3 per GPU (A2I_GPU_SLOTS" in message
        holder = next(worker for worker, gpu in held.items() if gpu == 1)
        workers[holder].kill()
        workers[holder].join(30)
        start()
        assert claims.get(timeout=30) == (len(workers) - 1, 1)
    finally:
        for worker in workers:
            worker.kill()
            worker.join(30)


def test_workers_that_see_different_gpus_through_cuda_visible_devices_do_not_collide(tmp_path):
    # CUDA_VISIBLE_DEVICES=0 and =1: each process sees one GPU, as index 0; the locks name the GPUs themselves
    holder = subprocess.Popen([sys.executable, "-c", CLAIM.replace(repr(GPUS), "['GPU-a']") + "; import time; "
                               "time.sleep(30)", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        assert claim_gpu(["GPU-b"], tmp_path) == 0
        third = subprocess.run([sys.executable, "-c", CLAIM.replace(repr(GPUS), "['GPU-a']"), str(tmp_path)],
                               capture_output=True, text=True)
        assert third.returncode != 0 and "all 1 GPUs are held" in third.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_local_rank_beyond_the_gpus_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ValueError, match=r"^LOCAL_RANK=2, but this machine has 2 CUDA device\(s\)"):
        select_device("cuda")


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
