"""`PreparedDataset`: the samples of one length and split of `data/prepared`, read lazily from the packed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from a2i.data.layout import SAMPLE_RATE, SPLITS, check_crops, read_index
from a2i.data.prepare import index_name
from a2i.io import load_npy
from a2i.variants import embeddings_dir


class PreparedDataset(Dataset):
    """(audio int16 [1, L*44100], image uint8 [S, S, 3], label) for `index_<L>s_<split>.csv` of `root`.

    tracks.npy and images.npy are memory-mapped on first use (also in DataLoader workers, which receive the
    dataset without its maps).
    """

    def __init__(self, root: str | Path, length_s: float, split: str):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
        self.root = Path(root)
        path = self.root / index_name(float(length_s), split)
        if not path.is_file():
            raise ValueError(f"{path} not found: run `prepare` with {length_s} in its lengths")
        self.path, self.length_s, self.split = path, float(length_s), split
        self.frames = int(round(self.length_s * SAMPLE_RATE))
        self.index = read_index(path, ("start", "image", "label"))
        self.labels = self.index["label"].to_numpy(np.int64)
        self._starts = self.index["start"].to_numpy(np.int64)
        self._rows = self.index["image"].to_numpy(np.int64)
        self._maps: dict[str, np.ndarray] = {}

    def require_samples(self) -> PreparedDataset:
        if not len(self):
            raise ValueError(f"{self.path} has no samples")
        return self

    def _map(self, name: str) -> np.ndarray:
        """`tracks` or `images`, opened (and checked) on first use: a stage reads only the arrays it declares."""
        if name not in self._maps:
            self._maps[name] = self._checked(name, load_npy(self.root / f"{name}.npy"))
        return self._maps[name]

    def _checked(self, name: str, array: np.ndarray) -> np.ndarray:
        """`array` is what prepare writes, and every sample lies inside it: a damaged file is named here, not by an
        IndexError of the one batch that draws the row (or not at all)."""
        path = self.root / f"{name}.npy"
        if name == "tracks":
            if array.dtype != np.int16 or array.ndim != 1:
                raise ValueError(f"{path}: {array.dtype} {list(array.shape)}, expected int16 [n]")
            bad = (self._starts < 0) | (self._starts + self.frames > len(array))
        else:
            check_crops(path, array)
            bad = (self._rows < 0) | (self._rows >= len(array))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{self.path}: row {row} (start {self._starts[row]}, image {self._rows[row]}) lies "
                             f"outside {path}")
        return array

    def __getstate__(self):
        return {**self.__dict__, "_maps": {}}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        start = self._starts[i]
        audio = np.array(self._map("tracks")[start:start + self.frames])[None]
        image = np.array(self._map("images")[self._rows[i]])
        return torch.from_numpy(audio), torch.from_numpy(image), int(self.labels[i])

    def images(self) -> np.ndarray:
        """uint8 [n, S, S, 3] in index order (S: prepare.image_size)."""
        return np.asarray(self._map("images")[self._rows])

    def audio(self, rows) -> np.ndarray:
        """int16 [len(rows), 1, L*44100] for the given index rows."""
        starts = self._starts[np.asarray(rows, dtype=np.int64)]
        return np.asarray(self._map("tracks")[starts[:, None] + np.arange(self.frames)])[:, None]


def load_embeddings(root: Path, embedding: str, split: str, rows: int) -> np.ndarray:
    """float32 [rows, 1024] of `data/embeddings/<embedding>/<split>.npy`, checked against the index length."""
    path = root / embeddings_dir(embedding) / f"{split}.npy"
    if not path.is_file():
        raise ValueError(f"{path} not found (run `embed --embedding {embedding}` first)")
    array = load_npy(path, mmap=False)
    if array.shape != (rows, 1024):
        raise ValueError(f"{path} has shape {array.shape}, expected ({rows}, 1024) to match its index")
    if not np.isfinite(array).all():
        raise ValueError(f"{path} contains NaN or Inf")
    return array.astype(np.float32, copy=False)
