"""Fetch, here, the wheels that the GPU image lacks, into .whl/ (gitignored), for scripts/gpu_check.sh to install
there: the GPU machine reaches no package index.

The GPU image (Python 3.12, x86-64) already holds torch, torchvision, torchaudio, numpy, pandas, pytest and many
more (IMAGE: its package list as the device tool's KINDS.md gave it on 2026-11-17). Starting from pyproject's
dependencies this walks the requirement tree, fetching each distribution the image lacks as a wheel for that
platform (`pip download --no-deps`, one at a time, as a resolver across platforms would need the image's own
packages), at the version installed in the environment that runs this script (`make setup`'s, which the tests
pass with: one consistent set), else the newest its requirement allows; a distribution published only as source
(hydra's antlr4 runtime) is built into a wheel here. It ends by checking that the folder fits the 64 MiB that
travels with a device call.

Usage: .venv/bin/python scripts/gpu_wheels.py [--out .whl]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

from packaging import tags
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parent.parent
PYTHON = "3.12"  # the image's
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "any")
LIMIT_MIB = 56  # of the 64 MiB a device call carries, the rest for the working tree
IMAGE = {canonicalize_name(name) for name in """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy
peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel
wrapt xarray xxhash yarl zipp
""".split()}
_TARGET = tuple(map(int, PYTHON.split(".")))
_WHEEL_PLATFORMS = [platform for platform in PLATFORMS if platform != "any"]
SUPPORTED = {*tags.cpython_tags(_TARGET, platforms=_WHEEL_PLATFORMS),  # the tags a wheel for the image may carry
             *tags.compatible_tags(_TARGET, f"cp{PYTHON.replace('.', '')}", platforms=_WHEEL_PLATFORMS)}
ENVIRONMENT = {**default_environment(), "python_version": PYTHON, "python_full_version": f"{PYTHON}.3",
               "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
               "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def project_requirements() -> list[Requirement]:
    with open(REPO / "pyproject.toml", "rb") as file:
        return [Requirement(line) for line in tomllib.load(file)["project"]["dependencies"]]


def applies(requirement: Requirement) -> bool:
    """Whether the image's Python needs `requirement` (extras are never asked for)."""
    return requirement.marker is None or requirement.marker.evaluate({**ENVIRONMENT, "extra": ""})


def fetch(requirement: Requirement, out: Path) -> Path:
    """The wheel of `requirement` for the image's platform in `out` (kept from an earlier run, downloaded, or, for a
    distribution published as source only, built here as a pure-Python wheel)."""
    try:
        version = metadata.version(requirement.name)
        spec = f"{requirement.name}=={version}"
    except metadata.PackageNotFoundError:
        version, spec = None, f"{requirement.name}{requirement.specifier}"
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
                PYTHON, "--implementation", "cp", *platforms, "-d", str(out), spec]
    result = subprocess.run(download, capture_output=True, text=True)
    if result.returncode != 0:
        if "No matching distribution" not in result.stderr:  # not a source-only release: a network or index error
            raise SystemExit(f"error: pip download {spec}: {result.stderr.strip().splitlines()[-1]}")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), spec], check=True)
    wheel = wheel_of(requirement.name, version, out)
    if wheel is None:
        raise SystemExit(f"error: {spec}: no wheel in {out} after pip")
    if not parse_wheel_filename(wheel.name)[3] & SUPPORTED:
        raise SystemExit(f"error: {wheel.name} is not for CPython {PYTHON} on manylinux x86-64")
    return wheel


def wheel_of(name: str, version: str | None, out: Path) -> Path | None:
    """The wheel of `name` (at `version`, if given) in `out`, by its file name (PEP 427)."""
    for wheel in sorted(out.glob("*.whl")):
        wheel_name, wheel_version, *_ = parse_wheel_filename(wheel.name)
        if wheel_name == canonicalize_name(name) and (version is None or str(wheel_version) == version):
            return wheel
    return None


def requirements_of(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", name))
        lines = archive.read(metadata).decode().splitlines()
    return [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / ".whl")
    out = parser.parse_args().out
    out.mkdir(exist_ok=True)
    fetched: dict[str, Path] = {}
    todo = project_requirements()
    while todo:
        requirement = todo.pop(0)
        name = canonicalize_name(requirement.name)
        if name in IMAGE or name in fetched or not applies(requirement):
            continue
        fetched[name] = fetch(requirement, out)
        print(f"{fetched[name].name}", flush=True)
        todo += requirements_of(fetched[name])
    mib = sum(path.stat().st_size for path in fetched.values()) / 2**20
    print(f"{len(fetched)} wheels, {mib:.1f} MiB in {out}")
    if mib > LIMIT_MIB:
        raise SystemExit(f"error: {out} holds {mib:.1f} MiB, more than the {LIMIT_MIB} MiB a device call can carry "
                         "beside the working tree")


if __name__ == "__main__":
    main()
