"""Deterministic weights and inputs of the AudioCLIP golden fixtures (tests/fixtures/audioclip/).

The reference AudioCLIP was run with synthetic weights given by the rules below, on the inputs below; the
fixture JSON holds its outputs plus sha256 digests that prove these builders reproduce weights and inputs
exactly. Weight rule per key (first match wins; every tensor drawn in float64 from its own CPU generator
seeded with crc32(f"{seed}:{key}"), then cast to the key's dtype):
window -> periodic Blackman-Harris; fbsp.m -> 0.01 N; fbsp.fb -> 1 + 0.01 N; fbsp.fc -> arange + 0.1 N;
logit scales -> ln(1/0.07) (image-text) and ln(100) (audio); num_batches_tracked -> 0; running_mean ->
0.1 N; running_var -> 0.5 + U; embeddings -> 0.02 N; text_projection -> N / sqrt(rows); norm weights ->
1 + 0.1 N; biases -> 0.02 N; other weights -> N / sqrt(fan_in). N ~ normal, U ~ uniform[0, 1).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import zlib
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "audioclip"
SR = 44100

_NORM_WEIGHT = re.compile(r"(^|\.)(bn\d*|ln_\d+|ln_final|ln_pre|ln_post|downsample\.1)\.weight$")
_BIAS = re.compile(r"(\.bias|(^|\.)in_proj_bias)$")
_WEIGHT = re.compile(r"(\.weight|(^|\.)in_proj_weight)$")
_EMBEDDINGS = {"token_embedding.weight", "positional_embedding", "visual.attnpool.positional_embedding"}


@functools.cache
def golden() -> dict:
    return json.loads((FIXTURES / "golden_seed1234.json").read_text())


def read_manifest() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """key -> (shape, dtype) from the reference manifest TSV."""
    rows = {}
    for line in (FIXTURES / "audioclip_state_dict.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, dtype = line.split("\t")
            dims = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
            rows[key] = (dims, getattr(torch, dtype))
    return rows


def _draw(key: str, shape: tuple[int, ...], seed: int, uniform: bool = False) -> torch.Tensor:
    generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{key}".encode()) & 0xFFFFFFFF)
    sampler = torch.rand if uniform else torch.randn
    return sampler(shape, generator=generator, dtype=torch.float64)


def _blackman_harris(length: int) -> torch.Tensor:
    a = (0.35875, 0.48829, 0.14128, 0.01168)
    x = [2.0 * math.pi * n / length for n in range(length)]
    return torch.tensor([a[0] - a[1] * math.cos(v) + a[2] * math.cos(2 * v) - a[3] * math.cos(3 * v) for v in x],
                        dtype=torch.float64)


def _value(key: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    n = functools.partial(_draw, key, shape, seed)
    special = {
        "audio.window": lambda: _blackman_harris(shape[0]),
        "audio.fbsp.m": lambda: 0.01 * n(),
        "audio.fbsp.fb": lambda: 1.0 + 0.01 * n(),
        "audio.fbsp.fc": lambda: torch.arange(shape[0], dtype=torch.float64) + 0.1 * n(),
        "audio.fbsp.bias": lambda: torch.empty(shape, dtype=torch.float64),
        "logit_scale": lambda: torch.tensor(math.log(1.0 / 0.07), dtype=torch.float64),
        "logit_scale_ai": lambda: torch.tensor(math.log(100.0), dtype=torch.float64),
        "logit_scale_at": lambda: torch.tensor(math.log(100.0), dtype=torch.float64),
        "text_projection": lambda: n() * math.sqrt(1.0 / shape[0]),
    }
    if key in special:
        return special[key]()
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith(".running_mean"):
        return 0.1 * n()
    if key.endswith(".running_var"):
        return 0.5 + n(uniform=True)
    if key in _EMBEDDINGS:
        return 0.02 * n()
    if _NORM_WEIGHT.search(key):
        return 1.0 + 0.1 * n()
    if _BIAS.search(key):
        return 0.02 * n()
    if _WEIGHT.search(key):
        return n() * math.sqrt(1.0 / math.prod(shape[1:]))
    raise KeyError(key)


def fill_state_dict(state_dict: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    return {k: _value(k, tuple(v.shape), seed).to(v.dtype).contiguous() for k, v in state_dict.items()}


def state_dict_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over sorted keys, each with dtype, shape and little-endian bytes (the fixtures' digest)."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        digest.update(key.encode() + b"\0" + str(t.dtype).encode() + b"\0" + repr(tuple(t.shape)).encode() + b"\0")
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()


def _lcg_noise(num: int, seed: int = 12345, amplitude: float = 10000.0) -> torch.Tensor:
    values, s = [], seed
    for _ in range(num):
        s = (1103515245 * s + 12345) % 2**31
        values.append(amplitude * (2.0 * s / 2**31 - 1.0))
    return torch.tensor(values, dtype=torch.float64)


def audio_inputs() -> dict[str, torch.Tensor]:
    """a: 1 s 440 Hz sine; b: 4 s 100->8000 Hz chirp, two equal channels; c: 0.5 s zeros; f: 1 s LCG noise."""
    n1 = torch.arange(SR, dtype=torch.float64)
    t = torch.arange(4 * SR, dtype=torch.float64) / SR
    chirp = 12000.0 * torch.sin(2.0 * math.pi * (100.0 * t + (8000.0 - 100.0) * t * t / (2.0 * 4.0)))
    return {
        "audio_a": (8000.0 * torch.sin(2.0 * math.pi * 440.0 * n1 / SR)).float().reshape(1, 1, SR),
        "audio_b": torch.stack([chirp, chirp]).float().reshape(1, 2, 4 * SR),
        "audio_c": torch.zeros(1, 1, SR // 2),
        "audio_f": _lcg_noise(SR).float().reshape(1, 1, SR),
    }


def image_raw() -> torch.Tensor:
    """uint8 [3, 224, 224]: (3x + 5y + 70c) mod 256."""
    y, x = torch.arange(224).reshape(1, 224, 1), torch.arange(224).reshape(1, 1, 224)
    c = torch.arange(3).reshape(3, 1, 1)
    return ((3 * x + 5 * y + 70 * c) % 256).to(torch.uint8)


def rel_l2(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x - ref).norm() / ref.norm())


def max_rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x - ref).abs().max() / ref.abs().max())


@functools.cache
def thesis_model():
    """One thesis-size AudioCLIP per test session (building it takes seconds); tests load what they need."""
    from a2i.audioclip import AudioCLIP

    torch.manual_seed(0)
    return AudioCLIP("thesis")
