"""Toy prepared datasets, generated-sample files and a random pytorch-fid Inception for the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from a2i.data.layout import INSTRUMENTS, parse_stem
from a2i.io import save_npz

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "evaluation"
REAL_FRAMES = FIXTURES / "real_frames"
CLASSES = len(INSTRUMENTS)


def toy_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """uint8 [n, 64, 64, 3]: noisy grey background, a block whose colour and place identify the class."""
    rng = np.random.default_rng(seed)
    images = rng.integers(90, 130, (len(labels), 64, 64, 3)).astype(np.uint8)
    for i, label in enumerate(labels):
        hue = np.array([(label * 97) % 256, (label * 53 + 80) % 256, (label * 181 + 40) % 256], np.uint8)
        top, left = 8 + (label % 4) * 10 + rng.integers(-2, 3), 8 + (label // 4) * 10 + rng.integers(-2, 3)
        images[i, top:top + 16, left:left + 16] = hue
    return images


def make_prepared(root: Path, per_class: dict[str, int], seed: int = 0, classes: int = CLASSES) -> Path:
    """images.npy + index_{1,2}s_{split}.csv; the 2 s index holds every other sample of the 1 s one, and each
    1 s sample of train uses its image twice (overlapping samples share frames), as prepare can."""
    frames, indexes, row = [], {}, 0
    for s, (split, count) in enumerate(per_class.items()):
        labels = np.repeat(np.arange(classes), count)
        frames.append(toy_images(labels, seed + s))
        rows = np.arange(row, row + len(labels))
        row += len(labels)
        one = pd.DataFrame({"performance": [f"{INSTRUMENTS[x]}00" for x in labels],
                            "instrument": np.array(INSTRUMENTS)[labels], "label": labels, "start": rows * 4410,
                            "image": rows})
        if split == "train":
            one = pd.concat([one, one]).sort_values("image", kind="stable")
        indexes[split] = one
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "images.npy", np.concatenate(frames))
    for split, index in indexes.items():
        index.to_csv(root / f"index_1s_{split}.csv", index=False)
        index.iloc[::2].to_csv(root / f"index_2s_{split}.csv", index=False)
    return root


def write_samples(folder: Path, epoch: int, guidance: float, seed: int, images: np.ndarray, labels: np.ndarray) -> Path:
    path = folder / f"epoch_{epoch:03d}_g{guidance:g}_s{seed}.npz"
    save_npz(path, images=images, labels=np.asarray(labels, np.int64))
    return path


def real_frames(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The real Sub-URMP frames of the fixtures, resized to size x size, and their labels."""
    files = sorted(REAL_FRAMES.glob("*.jpg"))
    images = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
                       for f in files])
    labels = np.array([INSTRUMENTS.index(parse_stem(f.stem).instrument) for f in files], np.int64)
    return images, labels


def random_inception_weights(path: Path) -> Path:
    """A randomly initialised pytorch-fid FID-InceptionV3 saved as pytorch-fid's weights file is: the
    state_dict of `fid_inception_v3()`. Convolutions get He init so that pool3 features are O(1)."""
    from unittest import mock

    from pytorch_fid import inception

    built = []
    original = inception._inception_v3

    def capture(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    torch.manual_seed(0)
    with mock.patch.object(inception, "_inception_v3", capture), \
            mock.patch.object(inception, "load_state_dict_from_url", lambda *a, **k: built[-1].state_dict()):
        network = inception.fid_inception_v3()
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(network.state_dict(), path)
    return path
