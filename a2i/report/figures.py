"""The thesis' figures (5.1-5.10) and image grids, drawn from our metrics and images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on runners
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from a2i.data.layout import INSTRUMENTS  # noqa: E402
from a2i.io import atomic_path  # noqa: E402

ALIGNMENT_COLORS = {"frozen": "C0", "mutual": "C1", "text": "C2"}


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def query_accuracy(finetune: pd.DataFrame, path: Path) -> None:
    """Figure 5.1: AudioCLIP test query accuracy by fine-tuning epoch."""
    epochs = sorted(int(c.removeprefix("query_acc_epoch")) for c in finetune if c.startswith("query_acc_epoch"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), sharey=True)
    for ax, alignment in zip(axes, ("frozen", "mutual", "text")):
        for _, row in finetune[finetune["alignment"] == alignment].sort_values("length_s").iterrows():
            ax.plot(epochs, [row[f"query_acc_epoch{e}"] for e in epochs], marker="o", label=f"{row['length_s']:g} s")
        ax.set(title=alignment.capitalize(), xlabel="epoch", ylim=(0, 1.02))
        ax.legend(fontsize=8)
    axes[0].set_ylabel("query accuracy (test)")
    _save(fig, path)


def best_by_variant(main: pd.DataFrame, column: str, path: Path, *, lower_is_better: bool, ylabel: str) -> None:
    """Figures 5.2 and 5.5: the best checkpoint of each variant, its epoch above the bar."""
    pick = main.loc[main.groupby("variant")[column].idxmin() if lower_is_better
                    else main.groupby("variant")[column].idxmax()].sort_values(["alignment", "length_s"])
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(pick)), 3.5))
    bars = ax.bar(pick["variant"], pick[column], color=pick["alignment"].map(ALIGNMENT_COLORS).to_list())
    low, high = f"{column}_ci_low", f"{column}_ci_high"
    if low in pick and pick[low].notna().all():
        # drawn about the interval's centre: a Frechet interval may exclude the bar's value (a2i.evaluation.stats)
        ax.errorbar(pick["variant"], (pick[low] + pick[high]) / 2, yerr=(pick[high] - pick[low]) / 2,
                    fmt="none", ecolor="black", capsize=3)
    for bar, epoch in zip(bars, pick["epoch"]):
        ax.annotate(str(int(epoch)), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                    va="bottom", fontsize=8)
    ax.set(ylabel=ylabel, xlabel="variant (number above bar: best epoch)")
    ax.tick_params(axis="x", rotation=45)
    _save(fig, path)


def cfg_scales(cfg: pd.DataFrame, fid: str, path: Path) -> None:
    """Figure 5.6: accuracy (a) and FID (b) by CFG scale ('None' = the model trained without CFG)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(cfg["cfg_label"], cfg["adherence"], marker="o")
    left.set(xlabel="CFG scale", ylabel="conditional adherence", title="(a) accuracy")
    right.plot(cfg["cfg_label"], cfg[fid], marker="o", color="C1")
    right.set(xlabel="CFG scale", ylabel=fid, title=f"(b) {fid}")
    _save(fig, path)


def cfg_per_class(cfg: pd.DataFrame, path: Path) -> None:
    """Figure 5.8: per-instrument accuracy by CFG scale, as box plots."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.boxplot([[row[f"acc_{i}"] for i in INSTRUMENTS] for _, row in cfg.iterrows()])
    ax.set_xticks(range(1, len(cfg) + 1), cfg["cfg_label"])
    ax.set(xlabel="CFG scale", ylabel="per-instrument accuracy")
    _save(fig, path)


def image_grid(real: np.ndarray, real_labels: np.ndarray, fake: np.ndarray, fake_labels: np.ndarray,
               path: Path, per_class: int = 4) -> None:
    """One row per instrument: `per_class` real test frames, then `per_class` generated images."""
    fig, axes = plt.subplots(len(INSTRUMENTS), 2 * per_class, figsize=(2 * per_class * 0.9, len(INSTRUMENTS) * 0.9))
    for label, name in enumerate(INSTRUMENTS):
        picks = (real[real_labels == label][:per_class], fake[fake_labels == label][:per_class])
        for half, images in enumerate(picks):
            for k in range(per_class):
                ax = axes[label, half * per_class + k]
                ax.axis("off")
                if k < len(images):
                    ax.imshow(images[k])
        axes[label, 0].text(-8, 32, name, ha="right", va="center", fontsize=7)
    axes[0, 0].set_title("real", fontsize=8, loc="left")
    axes[0, per_class].set_title("generated", fontsize=8, loc="left")
    _save(fig, path)


def upsampling_comparison(columns: dict[str, np.ndarray], labels: np.ndarray, path: Path) -> None:
    """One row per instrument (its first image), one column per entry of `columns` (e.g. base, bicubic, diffusion,
    real high-resolution): the same generated image at each stage, each drawn at the same display size."""
    fig, axes = plt.subplots(len(INSTRUMENTS), len(columns), figsize=(len(columns) * 1.3, len(INSTRUMENTS) * 1.3))
    for label, name in enumerate(INSTRUMENTS):
        picks = np.flatnonzero(labels == label)
        for c, images in enumerate(columns.values()):
            ax = axes[label, c]
            ax.axis("off")
            if len(picks):
                ax.imshow(images[picks[0]], interpolation="nearest")
        axes[label, 0].text(-0.1, 0.5, name, ha="right", va="center", fontsize=7, transform=axes[label, 0].transAxes)
    for c, title in enumerate(columns):
        axes[0, c].set_title(title, fontsize=7)
    _save(fig, path)


def mean_brightness(images: np.ndarray) -> np.ndarray:
    """Per-image mean pixel value (0-255): the exposure the thesis sees vary in Figures 5.9 and 5.10."""
    return images.reshape(len(images), -1).mean(axis=1)


def _draw_rows(fig, slots, rows: dict[str, np.ndarray], per_row: int) -> None:
    """One labelled row of up to `per_row` images per entry of `rows`, in grid slots[row, column]."""
    for r, (label, images) in enumerate(rows.items()):
        axes = [fig.add_subplot(slots[r, k]) for k in range(per_row)]
        for ax in axes:
            ax.axis("off")
        for ax, image in zip(axes, images):
            ax.imshow(image)
        axes[0].set_title(label, fontsize=8, loc="left")


def image_rows(rows: dict[str, np.ndarray], path: Path, title: str = "", per_row: int = 6) -> None:
    """Figures 5.4 and 5.7: labelled rows of images side by side."""
    fig = plt.figure(figsize=(per_row * 1.1, len(rows) * 1.3))
    _draw_rows(fig, fig.add_gridspec(len(rows), per_row), rows, per_row)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def brightness(real: np.ndarray, samples: dict[str, np.ndarray], path: Path, per_row: int = 8) -> None:
    """Figures 5.9 and 5.10: a row of samples per variant over a histogram of per-image mean brightness of the
    real test images and of each variant's samples."""
    fig = plt.figure(figsize=(per_row * 1.1, len(samples) * 1.3 + 2.5))
    slots = fig.add_gridspec(len(samples) + 1, per_row, height_ratios=[1] * len(samples) + [2])
    _draw_rows(fig, slots, samples, per_row)
    ax = fig.add_subplot(slots[-1, :])
    bins = np.linspace(0, 255, 33)
    for label, images in {"real test": real, **samples}.items():
        ax.hist(mean_brightness(images), bins=bins, histtype="step", density=True, label=label)
    ax.set(xlabel="per-image mean brightness", ylabel="density")
    ax.legend(fontsize=8)
    _save(fig, path)


def contact_sheet(frames: dict[str, list[np.ndarray]], path: Path) -> None:
    """The dataset at a glance: one row per instrument, one frame (the centre crop) per performance."""
    columns = max(len(row) for row in frames.values())
    fig, axes = plt.subplots(len(frames), columns, figsize=(columns * 1.0, len(frames) * 1.0), squeeze=False)
    for r, (name, row) in enumerate(frames.items()):
        for c in range(columns):
            axes[r, c].axis("off")
            if c < len(row):
                axes[r, c].imshow(row[c])
        axes[r, 0].text(-0.1, 0.5, name, ha="right", va="center", fontsize=7, transform=axes[r, 0].transAxes)
    _save(fig, path)


def spectrograms(examples: dict[str, np.ndarray], sample_rate: int, path: Path, per_row: int = 5) -> None:
    """Log-mel spectrograms (dB) of one audio sample per entry of `examples`, labelled with its key."""
    import torch
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=2048, hop_length=512, n_mels=96, f_max=11025)
    rows = -(-len(examples) // per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(per_row * 2.2, rows * 1.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, audio) in zip(axes.flat, examples.items()):
        power = mel(torch.as_tensor(audio, dtype=torch.float32) / 32768)
        db = torchaudio.functional.amplitude_to_DB(power, 10.0, 1e-10, 0.0, top_db=80.0)
        ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma",
                  extent=(0, len(audio) / sample_rate, 0, power.shape[0]))
        ax.set_title(name, fontsize=8)
    _save(fig, path)
