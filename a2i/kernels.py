"""One instruction set for PyTorch's CPU kernels, so that a CPU run writes the same bytes on every x86-64 CPU.

ATen's vectorised kernels, oneDNN's convolutions and MKL's matrix products each pick the widest instruction set
the CPU offers. AVX-512 kernels add in another order than AVX2 ones; the last-bit differences grow through
training, and an AVX-512 machine's default run ends with other checkpoints and metrics than the committed ones,
which an AVX2 machine wrote. Pinned to AVX2, which every x86-64 CPU of the last decade has, both write the same
bytes, except where MKL's float64 eigensolvers still differ in the last bits (the PCA projection's fit, the
Frechet distance): benchmarks/RESULTS.md, "2026-12-01, fourth session". The thread count still has to match.

`import a2i` applies the pin before any a2i module imports torch; the libraries read these variables when they
first run a kernel. A variable the user has set wins (`ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=ALL
MKL_CBWR=AUTO` lets every kernel use the whole CPU).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

AVX2_PIN = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def has_avx2(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this is an x86-64 CPU with AVX2, as Linux reports it (elsewhere: False, and nothing is pinned)."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not cpuinfo.is_file():
        return False
    with cpuinfo.open() as lines:  # the first CPU's flags; the file grows with the core count, read no further
        flags = next((line for line in lines if line.startswith("flags")), "")
    return "avx2" in flags.split()


def pin_cpu_kernels(environ: dict | None = None, cpuinfo: Path = Path("/proc/cpuinfo")) -> None:
    """Set the AVX2 pin in `environ` (default `os.environ`) where the CPU has AVX2 and the user set nothing."""
    environ = os.environ if environ is None else environ
    if has_avx2(cpuinfo):
        for name, value in AVX2_PIN.items():
            environ.setdefault(name, value)
