"""The instrument classifier (thesis 2.4.3, 4.3.1): a small CNN trained on the real images (64x64 in the thesis).

It is selected on the validation split, reported on the test split, and then used frozen by `evaluate` to
measure conditional adherence; its penultimate layer is also the feature space of `fid_classifier`.
The real images of a split are the frames of that split's samples at the smallest prepared length (it holds
the most samples), one per `image` row of images.npy; longer lengths added later do not change the classifier.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from a2i.data.layout import INSTRUMENTS, check_crops, read_index
from a2i.evaluation import FEATURES_NAME, LR_SCHEDULES
from a2i.io import load_npy, save_torch, write_json
from a2i.variants import IMAGES

log = logging.getLogger(__name__)

WIDTHS = (16, 32, 64, 128)
SHIFT_FRACTION = 16  # random translation when training: up to 1/16 of the image side (4 pixels at 64x64)
_INDEX = re.compile(r"^index_(\d+)s_(train|val|test)\.csv$")


# ------------------------------------------------------------------------------------------ real images

@dataclass(frozen=True)
class RealSplit:
    images: np.ndarray  # uint8 [n, S, S, 3]
    labels: np.ndarray  # int64 [n]
    rows: np.ndarray  # rows of the images file (images.npy, images_hr.npy: the same rows)
    length_s: int


def real_split(prepared: str | Path, split: str, images_file: str = IMAGES) -> RealSplit:
    """The distinct real images of `split` (and their labels) at the smallest prepared length, from `images_file`
    (images_hr.npy: the same frames at prepare.hr_image_size)."""
    prepared = Path(prepared)
    lengths = sorted({int(m[1]) for f in prepared.glob("index_*s_*.csv") if (m := _INDEX.match(f.name))})
    if not lengths:
        raise ValueError(f"{prepared} has no index_<L>s_<split>.csv files (run the prepare stage)")
    index_path = prepared / f"index_{lengths[0]}s_{split}.csv"
    if not index_path.is_file():
        raise ValueError(f"{index_path} not found")
    index = read_index(index_path, ("image", "label"))
    if index.empty:
        raise ValueError(f"{index_path} has no samples")
    if index.groupby("image")["label"].nunique().max() > 1:
        raise ValueError(f"{index_path}: one image row carries two labels")
    frames = index.drop_duplicates("image").sort_values("image")
    path = prepared / images_file
    if not path.is_file():
        raise ValueError(f"{path} not found (run the prepare stage)")
    images = load_npy(path)
    check_crops(path, images)
    rows = frames["image"].to_numpy(np.int64)
    if rows.min() < 0 or rows.max() >= len(images):
        raise ValueError(f"{index_path}: image rows outside {images_file} (0..{len(images) - 1})")
    return RealSplit(np.ascontiguousarray(images[rows]), frames["label"].to_numpy(np.int64), rows, lengths[0])


# ------------------------------------------------------------------------------------------ model

class InstrumentClassifier(nn.Module):
    """Conv-BN-ReLU stages (a stride-2 stem, then 2x max-pooling between stages), global average pooling ->
    penultimate features -> 13 logits. Small on purpose: it trains in well under a minute on 2 CPU cores."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, classes: int = len(INSTRUMENTS), image_size: int = 64):
        super().__init__()
        self.image_size = image_size
        layers, channels = [], 3
        for i, width in enumerate(widths):
            stride = 2 if i == 0 else 1
            layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(channels, classes))
        self.widths = tuple(widths)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def to_input(images: np.ndarray | torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 [n, S, S, 3] -> float [n, 3, S, S] in [-1, 1], S = `image_size` (the classifier's)."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (image_size, image_size, 3):
        raise ValueError(f"classifier input must be uint8 [n, {image_size}, {image_size}, 3], got "
                         f"{images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int) -> torch.Tensor:
    """Translate every image by up to `max_shift` pixels (edges replicated): framing varies between videos."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dx, dy = (torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)).unbind(0)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]


@torch.no_grad()
def outputs(model: InstrumentClassifier, images: np.ndarray, batch_size: int = 256,
            device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [n, 13] and penultimate features [n, d] of uint8 images [n, S, S, 3] (float32, on the CPU)."""
    model.eval()
    logits, features = [], []
    for start in range(0, len(images), batch_size):
        feats = model.features(to_input(images[start:start + batch_size], model.image_size).to(device))
        logits.append(model.head(feats).cpu())
        features.append(feats.cpu())
    return torch.cat(logits), torch.cat(features)


def predict(model: InstrumentClassifier, images: np.ndarray, batch_size: int = 256,
            device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels int64 [n] and penultimate features float64 [n, d]."""
    logits, features = outputs(model, images, batch_size, device)
    return logits.argmax(1).numpy().astype(np.int64), features.double().numpy()


def scores(model: InstrumentClassifier, split: RealSplit, device: str = "cpu") -> tuple[float, float]:
    """Accuracy and mean cross-entropy on a split."""
    logits = outputs(model, split.images, device=device)[0]
    labels = torch.from_numpy(split.labels)
    return float((logits.argmax(1) == labels).float().mean()), float(F.cross_entropy(logits, labels))


class ClassifierFeatures:
    """The classifier's penultimate layer as the feature extractor of `fid_classifier`."""

    name = FEATURES_NAME

    def __init__(self, model: InstrumentClassifier, batch_size: int = 256, device: str = "cpu"):
        self.model, self.batch_size, self.device = model, batch_size, device

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return predict(self.model, images, self.batch_size, self.device)[1]


# ------------------------------------------------------------------------------------------ training

@dataclass
class Training:
    model: InstrumentClassifier
    best_epoch: int
    val_accuracy: float
    history: list[dict]


def add_pixel_noise(x: torch.Tensor, max_std: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian pixel noise, its std uniform in [0, max_std] per image ([-1, 1] units).

    Adherence asks which instrument a generated image shows; sampler noise left in an image is FID's business.
    A classifier trained only on clean frames loses much of its accuracy on noisy ones (benchmarks/RESULTS.md,
    "Instrument classifier: train-time pixel noise").
    """
    if not max_std:  # no draws: noise-free training keeps its random-shift stream and skips a full-batch randn
        return x
    std = torch.rand((len(x), 1, 1, 1), generator=generator) * max_std
    return x + std * torch.randn(x.shape, generator=generator)


def train_classifier(train: RealSplit, val: RealSplit, epochs: int, batch_size: int, lr: float, seed: int,
                     noise_std: float = 0.0, augment: bool = False, lr_schedule: str = "constant",
                     device: str = "cpu") -> Training:
    """Train with AdamW on the real images (thesis 2.4.3), optionally with random shifts (`augment`), pixel noise
    (`noise_std`) and a one-cycle learning rate; keep the weights of the epoch with the best validation
    accuracy."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"classify.epochs and classify.batch_size must be >= 1, got {epochs}, {batch_size}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"classify.lr_schedule must be one of {LR_SCHEDULES}, got '{lr_schedule}'")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    image_size = train.images.shape[1]
    model = InstrumentClassifier(image_size=image_size).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(train.labels) // batch_size)
    # "constant": no scheduler at all (a ConstantLR of factor 1 would only add an object that does nothing)
    schedule = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
                if lr_schedule == "onecycle" else None)
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    best, history = None, []
    for epoch in tqdm(range(1, epochs + 1), desc="classifier", unit="epoch"):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            x = to_input(images[rows], image_size)
            if augment:
                x = random_shift(x, generator, max(1, image_size // SHIFT_FRACTION))
            x = add_pixel_noise(x, noise_std, generator).to(device)
            loss = F.cross_entropy(model(x), labels[rows].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total += loss.item() * len(rows)
        val_accuracy, val_loss = scores(model, val, device)
        history.append({"epoch": epoch, "loss": total / len(order), "val_accuracy": val_accuracy, "val_loss": val_loss})
        log.info("classifier epoch %d: loss %.4f, val accuracy %.4f, val loss %.4f", epoch, total / len(order),
                 val_accuracy, val_loss)
        # Ties in accuracy (common: 100%) go to the more confident model, which is sturdier on generated images.
        if best is None or (val_accuracy, -val_loss) > (best[1], -best[2]):
            best = (epoch, val_accuracy, val_loss, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[3])
    return Training(model.eval(), best[0], best[1], history)


def save_classifier(path: str | Path, model: InstrumentClassifier, metrics: dict) -> None:
    save_torch(path, {"state_dict": model.state_dict(), "widths": list(model.widths),
                      "image_size": model.image_size, "instruments": list(INSTRUMENTS), "metrics": metrics})


def load_classifier(path: str | Path, device: str = "cpu") -> InstrumentClassifier:
    """The frozen classifier saved by `classify`, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"classifier {path} not found (run the classify stage)")
    not_ours = f"{path} is not a classifier saved by the classify stage"
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a tensor archive
        raise ValueError(f"{not_ours} ({type(error).__name__})") from None
    if not isinstance(saved, dict) or not {"state_dict", "widths", "image_size"} <= set(saved):
        raise ValueError(f"{not_ours} (it lacks state_dict, widths or image_size)")
    if list(saved.get("instruments", [])) != list(INSTRUMENTS):
        raise ValueError(f"{path} was trained on other instrument labels")
    try:
        model = InstrumentClassifier(tuple(saved["widths"]), image_size=int(saved["image_size"]))
        model.load_state_dict(saved["state_dict"])
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"{not_ours} ({str(error).strip().splitlines()[0]})") from None
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval().to(device)


def classify(prepared: str | Path, model_path: str | Path, metrics_path: str | Path, epochs: int,
             batch_size: int, lr: float, min_accuracy: float, seed: int, noise_std: float = 0.0,
             augment: bool = False, lr_schedule: str = "constant", device: str = "cpu",
             images_file: str = IMAGES) -> dict:
    """The `classify` stage: train on real train images (of `images_file`), select on val, report test; fail below
    min_accuracy."""
    splits = {split: real_split(prepared, split, images_file) for split in ("train", "val", "test")}
    _check_disjoint(splits)
    training = train_classifier(splits["train"], splits["val"], epochs, batch_size, lr, seed, noise_std, augment,
                                lr_schedule, device)
    test_accuracy, test_loss = scores(training.model, splits["test"], device)
    metrics = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "val_accuracy": training.val_accuracy,
        "train_accuracy": scores(training.model, splits["train"], device)[0],
        "best_epoch": training.best_epoch,
        "epochs": epochs,
        "length_s": splits["train"].length_s,
        **{f"n_{split}": len(data.labels) for split, data in splits.items()},
    }
    log.info("classifier: test accuracy %.4f, val accuracy %.4f (epoch %d)", metrics["test_accuracy"],
             metrics["val_accuracy"], metrics["best_epoch"])
    if metrics["test_accuracy"] < min_accuracy:
        raise ValueError(f"classifier test accuracy {metrics['test_accuracy']:.4f} is below classify.min_accuracy "
                         f"{min_accuracy} (val {metrics['val_accuracy']:.4f}): nothing written")
    save_classifier(model_path, training.model, metrics)
    write_json(metrics_path, metrics)
    return metrics


def _check_disjoint(splits: dict[str, RealSplit]) -> None:
    """A frame in two splits would inflate the test accuracy."""
    names = list(splits)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            shared = np.intersect1d(splits[first].rows, splits[second].rows)
            if len(shared):
                raise ValueError(f"{len(shared)} images.npy rows are in both the {first} and {second} splits")
