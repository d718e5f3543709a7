"""A miniature repository root for the diffusion tests: prepared data, embeddings and params in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
CLASSES = 3
COLOURS = np.array([[230, 40, 30], [40, 200, 60], [40, 60, 230]], np.uint8)
SPLIT_SIZES = {"train": 8, "val": 2, "test": 2}  # per class


def train_params(**overrides) -> dict:
    """A `train` section for a few-second run of the tiny U-Net."""
    params = {
        "model_size": "tiny", "projection": "fc", "pca_components": 256, "dropout": 0.1, "epochs": 2,
        "batch_size": 4, "max_steps_per_epoch": 2, "lr": 1e-3, "loss_weighting": "eps", "p_uncond": 0.2,
        "output_skip": True, "context_tokens": 4, "standardize": True, "pca_scale": True, "ema": True,
        "ema_decay": 0.995, "checkpoint_every": 1, "timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
        "compile": False, "val_samples": 4, "preview": {"sampler": "dpmpp", "steps": 2, "guidance": 3.0},
        "threads": None, "seed": 0,
    }
    return {**params, **overrides}


def sample_params(**overrides) -> dict:
    params = {"sampler": "dpmpp", "steps": 2, "ddpm_variance": "fixed_small", "guidance": 3.0, "cfg_scales": [1, 3],
              "cfg_epoch": None, "seeds": [0], "per_class": None, "val_per_class": 1, "batch_size": 8,
              "threads": None, "seed": 0}
    return {**params, **overrides}


def make_root(root: Path, length_s: int = 1, embedding: str = "text-1s", image_size: int = 64) -> Path:
    """Prepared data (flat colour images per class, silent tracks) and class-clustered embeddings."""
    rng = np.random.default_rng(0)
    prepared = root / "data" / "prepared"
    prepared.mkdir(parents=True, exist_ok=True)
    images, centres = [], rng.normal(size=(CLASSES, 1024)).astype(np.float32)
    for split, per_class in SPLIT_SIZES.items():
        labels = np.repeat(np.arange(CLASSES), per_class)
        first = sum(len(i) for i in images)
        block = np.repeat(COLOURS[labels][:, None, None, :], image_size, axis=1).repeat(image_size, axis=2)
        images.append(np.clip(block + rng.integers(-10, 10, block.shape), 0, 255).astype(np.uint8))
        pd.DataFrame({"performance": [f"p{label}" for label in labels], "instrument": "x", "label": labels,
                      "start": 0, "image": np.arange(first, first + len(labels))}).to_csv(
            prepared / f"index_{length_s}s_{split}.csv", index=False)
        emb_dir = root / "data" / "embeddings" / embedding
        emb_dir.mkdir(parents=True, exist_ok=True)
        cond = centres[labels] + 0.1 * rng.normal(size=(len(labels), 1024)).astype(np.float32)
        np.save(emb_dir / f"{split}.npy", cond.astype(np.float32))
    np.save(prepared / "images.npy", np.concatenate(images))
    np.save(prepared / "tracks.npy", np.zeros(44100 * (length_s + 1), np.int16))
    return root


def write_params(root: Path, train: dict | None = None, sample: dict | None = None) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump({"train": train or train_params(),
                                                      "sample": sample or sample_params()}))


def corrupt_ema(path: Path, name: str = "outc.weight") -> None:
    """Overwrite the data of EMA tensor `name` in a checkpoint with random bytes, in place: the file still loads."""
    import torch

    data = bytearray(path.read_bytes())
    raw = torch.load(path, weights_only=True)["ema"][name].numpy().tobytes()
    assert data.count(raw) == 1, "the tensor's bytes are not unique in the file"
    start = data.index(raw)
    data[start:start + len(raw)] = np.random.default_rng(0).bytes(len(raw))
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
