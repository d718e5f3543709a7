"""Experiment variants and where each stage keeps its artifacts.

A variant is one trained diffusion model: an embedding variant (alignment x length) plus, for the thesis'
studies, a change of the diffusion setup: `nocfg` (p_uncond = 0, thesis 4.4), `pca` (PCA projection,
thesis 4.5) or `nonorm` (the encoding layer without Dropout and LayerNorm, thesis 5.4 / Figure 5.10).
Names are what DVC shows: `text-2s`, `text-2s-nocfg`, `text-2s-pca`, `text-2s-nonorm`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ALIGNMENTS = ("text", "frozen", "mutual")
STUDIES = ("nocfg", "pca", "nonorm")
_NAME = re.compile(r"^(?P<alignment>[a-z]+)-(?P<length>\d+)s(?:-(?P<study>[a-z]+))?$")


@dataclass(frozen=True)
class Variant:
    alignment: str
    length: int
    study: str | None = None

    def __post_init__(self):
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got '{self.alignment}'")
        if self.study is not None and self.study not in STUDIES:
            raise ValueError(f"study must be one of {STUDIES}, got '{self.study}'")
        if not 1 <= self.length <= 10:
            raise ValueError(f"length must be 1..10 seconds, got {self.length}")

    @classmethod
    def parse(cls, name: str) -> "Variant":
        match = _NAME.match(name)
        if not match:
            raise ValueError(f"variant '{name}' is not of the form <alignment>-<length>s[-<study>]")
        return cls(match["alignment"], int(match["length"]), match["study"])

    @property
    def name(self) -> str:
        return f"{self.embedding}-{self.study}" if self.study else self.embedding

    @property
    def embedding(self) -> str:
        """The embedding variant this model is conditioned on (one fine-tuned audio head)."""
        return f"{self.alignment}-{self.length}s"

    def projection(self, default: str) -> str:
        return "pca" if self.study == "pca" else default

    def p_uncond(self, default: float) -> float:
        return 0.0 if self.study == "nocfg" else default

    def encoding_norm(self, default: bool) -> bool:
        return False if self.study == "nonorm" else default


def grid(lengths: list[int], alignments: list[str], study: dict) -> list[Variant]:
    """The diffusion variants of one experiment: every (length, alignment) cell, then the study variants."""
    cells = [Variant(alignment, int(length)) for length in lengths for alignment in alignments]
    return cells + [Variant(study["alignment"], int(study["length"]), name) for name in study["variants"]]


# Artifact layout: every stage reads and writes through these helpers, so the DAG in dvc.yaml and the
# code agree on paths.
PARAMS_CHECK = Path("data/params_check.json")  # the `check` stage's: every other stage runs after it
SYNTHETIC = Path("data/synthetic")
DOWNLOADS = Path("data/download")
PREPARED = Path("data/prepared")
IMAGES = "images.npy"  # the crops at prepare.image_size, in PREPARED
HR_IMAGES = "images_hr.npy"  # the same crops at prepare.hr_image_size
EMBEDDINGS = Path("data/embeddings")
SAMPLES = Path("data/samples")
CFG_SAMPLES = Path("data/samples_cfg")  # the CFG sweep's other scales (thesis 4.4), apart so a sweep change samples
                                         # only the swept checkpoint
AUDIOCLIP_MODELS = Path("models/audioclip")
DIFFUSION_MODELS = Path("models/diffusion")
CLASSIFIER = Path("models/classifier.pt")
CLASSIFIER_HR = Path("models/classifier_hr.pt")  # the same classifier trained at prepare.hr_image_size
SUPERRES_MODEL = Path("models/superres.pt")
SAMPLES_SR = Path("data/samples_sr")  # <method>/<sample_name>.npz: the selected checkpoint's test images upsampled
UPSAMPLERS = ("bicubic", "diffusion")
UPSAMPLED_CHECKPOINT = SAMPLES_SR / "selected.json"  # {variant, epoch, guidance} whose images were upsampled
METRICS = Path("metrics")
COUNTS = METRICS / "counts.json"
REPORT = Path("report")
CONFUSION_PLOTS = Path("plots/confusion")
CFG_METRICS = METRICS / "evaluate_cfg"
CFG_CONFUSION_PLOTS = Path("plots/confusion_cfg")
LIVE = Path("dvclive")  # training curves: dvclive/<stage>/<embedding or variant>
SAMPLER_CHECKS = Path("data/sampler_check")  # `a2i compare-samplers`, outside the pipeline


def live_path(stage: str, name: str) -> Path:
    return LIVE / stage / name


def upsampled_dir(method: str) -> Path:
    if method not in UPSAMPLERS:
        raise ValueError(f"upsampling method must be one of {UPSAMPLERS}, got '{method}'")
    return SAMPLES_SR / method


def audioclip_model(embedding: str) -> Path:
    return AUDIOCLIP_MODELS / f"{embedding}.pt"


def embeddings_dir(embedding: str) -> Path:
    return EMBEDDINGS / embedding


def diffusion_dir(variant: str) -> Path:
    return DIFFUSION_MODELS / variant


def checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch:03d}.pt"


def checkpoint_epoch(name: str) -> int | None:
    """The epoch of a `checkpoint_name`; None for any other file name."""
    match = re.fullmatch(r"epoch_(\d+)\.pt", name)
    return int(match[1]) if match else None


def samples_dir(variant: str, split: str = "test") -> Path:
    """Generated images of a variant: conditioned on the test split, or (`val`) the validation split's
    conditions used for model selection, or (`cfg`) the test split at the CFG sweep's other scales."""
    if split == "cfg":
        return CFG_SAMPLES / variant
    return SAMPLES / variant if split == "test" else SAMPLES / variant / split


def evaluation_name(epoch: int, guidance: float) -> str:
    """One evaluated checkpoint setting: its metrics and confusion files are named so (seeds pooled)."""
    return f"epoch_{epoch:03d}_g{guidance:g}"


def sample_name(epoch: int, guidance: float, seed: int) -> str:
    return f"{evaluation_name(epoch, guidance)}_s{seed}"


def parse_sample_name(stem: str) -> tuple[int, float, int] | None:
    """(epoch, guidance, seed) of a `sample_name`; None for any other name (also one that only looks alike,
    e.g. `g3.0` for `g3`)."""
    match = re.fullmatch(r"epoch_(\d+)_g([0-9.e+-]+)_s(\d+)", stem)
    if not match:
        return None
    try:
        parsed = int(match[1]), float(match[2]), int(match[3])
    except ValueError:  # a guidance such as `1e+-3`
        return None
    return parsed if sample_name(*parsed) == stem else None
