"""Which device a stage runs on, and N slots per GPU for the concurrent `dvc queue` workers.

`dvc queue start -j K` runs K experiments at once and knows nothing about GPUs. Each process therefore claims a
slot itself: it takes an exclusive lock on `<lock_dir>/gpu-<id>.slot<j>.lock` for the first free slot (every
GPU's slot 0 before any slot 1, so the processes spread over the GPUs; <id> is the GPU's UUID, the same whatever
CUDA_VISIBLE_DEVICES numbers it) and holds it for its lifetime (the OS drops the lock when the process dies, so a
killed run frees its slot). `$A2I_GPU_SLOTS` (default 1) slots per GPU let several small runs share one GPU, which
one batch-12 run leaves mostly idle. Under `torchrun` the local rank decides instead.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

import torch

log = logging.getLogger(__name__)
SLOTS_ENV = "A2I_GPU_SLOTS"
_held: dict[Path, tuple[int, object]] = {}  # lock dir -> (GPU index, open lock file), for the process' life


def gpu_slots() -> int:
    """Processes per GPU, from `$A2I_GPU_SLOTS` (default 1)."""
    raw = os.environ.get(SLOTS_ENV, "1")
    try:
        slots = int(raw)
    except ValueError:
        slots = 0
    if slots < 1:
        raise ValueError(f"{SLOTS_ENV}={raw!r} must be an integer >= 1 (processes per GPU)")
    return slots


def claim_gpu(gpu_ids: list[str], lock_dir: str | Path) -> int:
    """Index in `gpu_ids` (the visible GPUs' physical ids, `physical_ids()`) of a GPU with a slot no other a2i
    process holds; waits for none (raises if all are taken).

    A process that already holds one keeps it (a flock is per open file, so a second claim would see its own
    lock as another process').
    """
    slots = gpu_slots()
    lock_dir = Path(lock_dir).resolve()
    if lock_dir in _held:
        return _held[lock_dir][0]
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(slots):
        for index, gpu_id in enumerate(gpu_ids):
            handle = open(lock_dir / f"gpu-{gpu_id}.slot{slot}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held[lock_dir] = (index, handle)
            return index
    raise ValueError(f"all {len(gpu_ids)} GPUs are held by other a2i processes, {slots} per GPU ({SLOTS_ENV}; locks "
                     f"in {lock_dir}); start no more queue workers than GPUs x {SLOTS_ENV}")


def physical_ids() -> list[str]:
    """The UUID of each visible GPU, in the order of its index."""
    return [str(torch.cuda.get_device_properties(index).uuid) for index in range(torch.cuda.device_count())]


def parse_device(name: str) -> torch.device:
    """The device a user named (`cpu`, `cuda`, `cuda:1`), checked to exist here: later, a missing GPU surfaces
    as an error about whatever is first moved to it (a checkpoint file)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"'{name}' is not a device: cpu, cuda or cuda:<index>") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"'{name}': a2i runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"'{name}': CUDA is not available on this machine; use cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"'{name}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def select_device(prefer: str = "auto") -> torch.device:
    """`cpu`, `cuda` (a free GPU), `auto` (a free GPU when CUDA is available, else the CPU), or a GPU the user
    named (`cuda:1`, checked by `parse_device`)."""
    if prefer not in ("auto", "cpu", "cuda"):
        device = parse_device(prefer)
        if device.type == "cuda":  # the current device too, which CUDA graphs and the memory figures use
            torch.cuda.set_device(device)
        return device
    if prefer == "cpu" or (prefer == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available on this machine; use cpu")
    if "LOCAL_RANK" in os.environ:  # torchrun: one process per GPU already
        index = int(os.environ["LOCAL_RANK"])
        if index >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={index}, but this machine has {torch.cuda.device_count()} CUDA device(s): "
                             "start no more processes per node than GPUs")
    else:
        lock_dir = os.environ.get("A2I_GPU_LOCK_DIR", "/tmp/a2i-gpu-locks")
        index = claim_gpu(physical_ids(), lock_dir)
    torch.cuda.set_device(index)
    log.info("using cuda:%d", index)
    return torch.device("cuda", index)


def set_threads(threads: int | None) -> None:
    """Intra-op CPU threads; None keeps torch's default. On a CPU shared with other jobs one thread avoids the
    OpenMP barrier stalls that make two threads several times slower than one (benchmarks/RESULTS.md, "CPU
    training speed of the tiny profile")."""
    if threads:
        torch.set_num_threads(int(threads))
