import os
import subprocess
import sys

import pytest

from a2i import kernels
from a2i.kernels import AVX2_PIN, has_avx2, pin_cpu_kernels

AVX512_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw\n"
OLD_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx\n"


@pytest.fixture
def x86(monkeypatch):
    monkeypatch.setattr(kernels.platform, "machine", lambda: "x86_64")


def cpuinfo(tmp_path, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_an_avx2_cpu_is_pinned_to_avx2(tmp_path, x86):
    environ = {}
    pin_cpu_kernels(environ, cpuinfo(tmp_path, AVX512_CPUINFO))
    assert environ == AVX2_PIN


def test_what_the_user_set_wins(tmp_path, x86):
    environ = {"ATEN_CPU_CAPABILITY": "avx512"}
    pin_cpu_kernels(environ, cpuinfo(tmp_path, AVX512_CPUINFO))
    assert environ == {**AVX2_PIN, "ATEN_CPU_CAPABILITY": "avx512"}


def test_nothing_is_pinned_without_avx2(tmp_path, x86, monkeypatch):
    # Forcing AVX2 kernels on a CPU without them would crash; other architectures have their own kernels.
    environ = {}
    pin_cpu_kernels(environ, cpuinfo(tmp_path, OLD_CPUINFO))
    pin_cpu_kernels(environ, tmp_path / "absent")
    monkeypatch.setattr(kernels.platform, "machine", lambda: "aarch64")
    pin_cpu_kernels(environ, cpuinfo(tmp_path, AVX512_CPUINFO))
    assert environ == {}


# A convolution reports the instruction set oneDNN chose; ATen reports its own capability.
PROBE = ("import a2i, torch; torch.nn.functional.conv2d(torch.ones(2, 8, 16, 16), torch.ones(8, 8, 3, 3)); "
         "print('aten', torch.backends.cpu.get_cpu_capability())")


def probe(**extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in AVX2_PIN} | {"ONEDNN_VERBOSE": "1", **extra}
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                          check=True).stdout


def instruction_sets(output: str) -> list[str]:
    """oneDNN's ISA line (its prefix varies between oneDNN releases), then ATen's capability."""
    return [line.split(",isa:")[-1] if ",isa:" in line else line for line in output.splitlines()
            if ",isa:" in line or line.startswith("aten ")]


def test_importing_a2i_pins_the_kernels_torch_runs():
    found = instruction_sets(probe())
    if has_avx2():
        assert found == ["Intel AVX2", "aten AVX2"]
    else:
        assert "aten AVX2" not in found


def test_a_user_can_lift_the_pin():
    assert instruction_sets(probe(ATEN_CPU_CAPABILITY="default"))[-1] == "aten DEFAULT"
