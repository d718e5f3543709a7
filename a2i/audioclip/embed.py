"""The fine-tuned audio encoder: reading the saved heads and embedding every prepared sample (`embed` stage).

The diffusion stages see audio only through these embeddings: one float32 array [n, 1024] per split whose
rows follow `data/prepared/index_<L>s_<split>.csv` (a copy of that index is written next to it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from a2i.audioclip.checkpoint import check_state_dict, module_entries
from a2i.audioclip.esresnext import ESResNeXtFBSP
from a2i.audioclip.sizes import SIZES, size_config
from a2i.config import MAX_LENGTH_S, EmbedConfig
from a2i.data.dataset import PreparedDataset
from a2i.data.layout import SPLITS
from a2i.devices import select_device
from a2i.io import atomic_dir, save_npy, write_csv
from a2i.variants import ALIGNMENTS, PREPARED, Variant, audioclip_model, embeddings_dir

log = logging.getLogger(__name__)

HEADS_KEYS = ("size", "alignment", "length_s", "pretrained", "audio", "image")


def read_heads(path: str | Path) -> dict[str, Any]:
    """The dict saved by the finetune stage; ValueError naming the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no fine-tuned AudioCLIP heads (run the finetune stage first)")
    try:
        heads = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a bad file
        raise ValueError(f"{path}: unreadable fine-tuned heads ({type(error).__name__})") from None
    if not isinstance(heads, dict) or any(key not in heads for key in HEADS_KEYS):
        raise ValueError(f"{path}: not a fine-tuned heads file (expected keys {', '.join(HEADS_KEYS)})")
    problem = _heads_problem(heads)
    if problem:
        raise ValueError(f"{path}: not a fine-tuned heads file ({problem})")
    return heads


def _heads_problem(heads: dict[str, Any]) -> str | None:
    """What is malformed in a heads dict's metadata (its weights are checked against the model they build)."""
    if not isinstance(heads["size"], str) or heads["size"] not in SIZES:
        return f"size {heads['size']!r} is not one of {', '.join(SIZES)}"
    if not isinstance(heads["alignment"], str):
        return f"alignment {heads['alignment']!r} is not a name"
    if heads["alignment"] not in ALIGNMENTS:
        return f"alignment {heads['alignment']!r} is not one of {', '.join(ALIGNMENTS)}"
    length = heads["length_s"]
    if isinstance(length, bool) or not isinstance(length, (int, float)) or length not in range(1, MAX_LENGTH_S + 1):
        return f"length_s {length!r} is not a whole number of seconds in 1..{MAX_LENGTH_S}"
    if not isinstance(heads["audio"], dict):
        return f"audio is a {type(heads['audio']).__name__}, not a state dict"
    return None


def heads_embedding(heads: dict[str, Any]) -> str:
    """The embedding variant `<alignment>-<length>s` that a (checked) heads dict was fine-tuned for."""
    return Variant(heads["alignment"], int(heads["length_s"])).embedding


def load_audio_encoder(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The fine-tuned audio head in eval mode: float int16-range audio [B, C, T] at 44.1 kHz -> [B, 1024]."""
    return audio_encoder(read_heads(path), path, device)


def audio_encoder(heads: dict[str, Any], path: str | Path, device: str | torch.device) -> nn.Module:
    """`load_audio_encoder` of heads already read (by `read_heads`) from `path`."""
    encoder = ESResNeXtFBSP(size_config(heads["size"]).audio)
    problems = check_state_dict(heads["audio"], module_entries(encoder))
    if problems:
        raise ValueError(f"{path}: audio head does not fit size {heads['size']!r}: {'; '.join(problems[:3])}")
    encoder.load_state_dict(heads["audio"], strict=True)
    return encoder.to(device).eval()


def embed_audio(encoder: nn.Module, dataset, batch_size: int, desc: str = "embed") -> np.ndarray:
    """Embed every item of a `PreparedDataset` in index order -> float32 [n, dim]. Leaves `encoder` in eval mode."""
    device = next(encoder.parameters()).device
    encoder.eval()
    chunks = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(dataset), batch_size), desc=desc, unit="batch", leave=False):
            rows = np.arange(start, min(start + batch_size, len(dataset)))
            audio = torch.from_numpy(dataset.audio(rows)).to(device=device, dtype=torch.float32)
            chunks.append(encoder(audio).float().cpu().numpy())
    if not chunks:
        raise ValueError(f"{desc}: the dataset is empty")
    return np.concatenate(chunks)


def parse_embedding(embedding: str) -> Variant:
    """`<alignment>-<length>s` -> its Variant; ValueError for a malformed name or a diffusion variant."""
    variant = Variant.parse(embedding)
    if variant.study is not None:
        raise ValueError(f"'{embedding}' names a diffusion variant; expected an embedding <alignment>-<length>s")
    return variant


def run_embed(embedding: str, params: EmbedConfig | dict[str, Any], prepared: str | Path = PREPARED,
              model_path: str | Path | None = None, out_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """The `embed` stage: embed train/val/test of one (alignment, length) cell with its fine-tuned audio head.

    Writes `<out_dir>/<split>.npy` (float32 [n, 1024]) and `<out_dir>/<split>.csv` (the index it belongs to)
    only after every split is embedded. Returns the arrays by split.
    """
    variant = parse_embedding(embedding)
    config = EmbedConfig.of(params)
    model_path = Path(model_path or audioclip_model(variant.embedding))
    out_dir = Path(out_dir or embeddings_dir(variant.embedding))
    heads = read_heads(model_path)
    if heads_embedding(heads) != variant.embedding:
        raise ValueError(f"{model_path}: heads were fine-tuned for {heads_embedding(heads)}, not {variant.embedding}")
    encoder = audio_encoder(heads, model_path, select_device(config.device))

    datasets = {split: PreparedDataset(prepared, variant.length, split).require_samples() for split in SPLITS}
    arrays = {split: embed_audio(encoder, data, config.batch_size, desc=f"embed {variant.embedding} {split}")
              for split, data in datasets.items()}
    with atomic_dir(out_dir) as staging:  # all splits from one head, or none: a killed run leaves no mix
        for split, array in arrays.items():
            save_npy(staging / f"{split}.npy", array)
            write_csv(staging / f"{split}.csv", datasets[split].index)
            log.info("%s %s: %d embeddings of dim %d", variant.embedding, split, *array.shape)
    return arrays
