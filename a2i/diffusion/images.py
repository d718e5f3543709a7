"""Image utilities of the generated samples: model space to uint8, grids, PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from a2i.io import atomic_path


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Model space [-1, 1], [B, 3, H, W] -> uint8 [B, H, W, 3]."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, columns: int) -> Image.Image:
    """uint8 [n, H, W, 3] -> one PIL image, row-major, `columns` wide."""
    n, h, w, _ = images.shape
    rows = max(1, -(-n // columns))
    canvas = np.full((rows * h, columns * w, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
    return Image.fromarray(canvas)


def class_grid(images: np.ndarray, labels: np.ndarray, per_class: int = 8) -> Image.Image:
    """One row per class present, its first `per_class` images (fewer columns when no class has as many)."""
    rows = [np.flatnonzero(labels == label)[:per_class] for label in np.unique(labels)]
    per_class = max(len(row) for row in rows)
    blank = np.full_like(images[0], 255)
    tiles = [images[row[i]] if i < len(row) else blank for row in rows for i in range(per_class)]
    return image_grid(np.stack(tiles), per_class)


def save_png(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
