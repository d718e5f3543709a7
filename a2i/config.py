"""The typed, validated parameters: one dataclass per section of params.yaml, and the grid keys.

Every value is checked against what its stage accepts before any work: a stage reads its own section through
`load_section_config`, and the first DVC stage, `check`, validates all of params.yaml with `check_params`, so a
bad `-S` override fails in seconds instead of after hours of training. Every problem is one line naming the
key, the value and what is allowed; all of them are reported together (`ConfigError`).

Import cost matters (the `check` stage runs on every `dvc exp run`): only light modules are imported here,
never torch or numpy.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, ClassVar, TypeVar

from a2i import MAX_BATCH, MAX_SEED
from a2i.data import BOX as BOX_TEXT, DOWNLOAD_ITEMS, DOWNLOAD_SOURCES, EDGE_SECONDS, ON_BAD_FILE, SPAN as SPAN_TEXT
from a2i.data import is_box, is_span, url_file_name
from a2i.data.layout import INSTRUMENTS
from a2i.diffusion import EMB_DIM, checkpoint_schedule
from a2i.diffusion.schedule import DDPM_VARIANCES, LOSS_WEIGHTINGS, SAMPLERS, Schedule
from a2i.evaluation import LR_SCHEDULES, MAX_BOOTSTRAP
from a2i.params import load_params
from a2i.variants import ALIGNMENTS, DOWNLOADS, STUDIES, SYNTHETIC, Variant

# The model sizes of a2i.audioclip.sizes.SIZES and a2i.diffusion.unet.SIZES (a test checks they agree).
MODEL_SIZES = ("tiny", "thesis")
DEVICES = ("auto", "cpu", "cuda")  # a2i.devices.select_device; or a GPU named `cuda:<index>`
PROJECTIONS = ("fc", "pca")
DATASETS = ("synthetic", "suburmp")
MAX_LENGTH_S = 10  # a2i.variants.Variant
MAX_PERFORMANCES = 100  # per instrument: Sub-URMP's two-digit performance numbers (a2i.data.layout)
MAX_PERFORMANCE_S = 3600  # an hour: longer than any URMP piece
MAX_FRAME = (7680, 4320)  # 8K UHD: four times the real 1920x1080 frames' side
# Bounds on sizes that allocate: beyond them a run fails hours later, out of memory, not at the check.
MAX_IMAGE_SIZE = 1024  # a square crop of the real frames is at most 1080 pixels high
MAX_THREADS = 1024
MAX_LR = 10.0  # far above any rate that trains; a larger one overflows float32 weights in a step or two


class ConfigError(ValueError):
    """Every problem found in the parameters, one per line (a stage prints each as `error: <problem>`)."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# ------------------------------------------------------------------------------------------------ rules

# A rule says what one key accepts: its `parse(key, value, problems)` returns the value, normalised, and adds a
# line to `problems` for each thing wrong with it.

@dataclass(frozen=True)
class Check:
    """A plain value: `allowed` completes "<key>=<value> is not ..."; `convert` normalises a good value (an int
    given for a float key becomes a float, as the stages' float() calls used to make it)."""

    allowed: str
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda value: value

    def parse(self, key: str, value: Any, problems: list[str]) -> Any:
        if self.accepts(value):
            return self.convert(value)
        problems.append(f"{key}={value!r} is not {self.allowed}")
        return value


@dataclass(frozen=True)
class ListOf:
    """A list of distinct items, each following `item` (each bad item is its own problem). Every list of the
    config is a set: a repeated length, seed or scale would run or count the same work twice."""

    item: Check
    nonempty: bool = True

    @property
    def allowed(self) -> str:
        return f"a {'non-empty ' if self.nonempty else ''}list of {self.item.allowed}"

    def parse(self, key: str, value: Any, problems: list[str]) -> Any:
        if not isinstance(value, list) or (self.nonempty and not value):
            problems.append(f"{key}={value!r} is not {self.allowed}")
            return value
        before = len(problems)
        parsed = [self.item.parse(f"{key}[{i}]", item, problems) for i, item in enumerate(value)]
        if len(problems) > before:  # bad items are problems enough (and may be unhashable)
            return parsed
        repeated = [item for item, count in Counter(parsed).items() if count > 1]
        if repeated:
            problems.append(f"{key}={value!r} repeats {', '.join(map(repr, repeated))}: list each item once")
        return parsed


@dataclass(frozen=True)
class Nested:
    """A mapping parsed into the dataclass `section` (its keys named `<key>.<name>`)."""

    section: type

    def parse(self, key: str, value: Any, problems: list[str]) -> Any:
        return parse_section(self.section, key, value, problems)


@dataclass(frozen=True)
class MappingOf:
    """A mapping from names following `name` to values following `item`."""

    allowed: str
    name: Check
    item: Check

    def parse(self, key: str, value: Any, problems: list[str]) -> Any:
        if not isinstance(value, dict):
            problems.append(f"{key}={value!r} is not {self.allowed}")
            return value
        for name in value:
            self.name.parse(f"{key} key", name, problems)
        return {name: self.item.parse(f"{key}.{name}", item, problems) for name, item in value.items()}


Rule = Check | ListOf | Nested | MappingOf


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def integer(low: int | None = None, high: int | None = None) -> Check:
    bound = (f" in {low}..{high}" if high is not None else f" >= {low}") if low is not None else ""
    return Check(f"an integer{bound}", lambda v: _is_int(v) and (low is None or v >= low)
                 and (high is None or v <= high))


def number(low: float | None = None, high: float | None = None, *, open_low: bool = False,
           open_high: bool = False) -> Check:
    if low is not None and high is not None:
        bound = f" in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    elif low is not None:
        bound = f" {'>' if open_low else '>='} {low:g}"
    else:
        bound = ""

    def accepts(v: Any) -> bool:
        return _is_number(v) and (low is None or (v > low if open_low else v >= low)) and (
            high is None or (v < high if open_high else v <= high))

    return Check(f"a number{bound}", accepts, float)


def one_of(choices: tuple[str, ...]) -> Check:
    return Check(f"one of {', '.join(choices)}", lambda v: isinstance(v, str) and v in choices)


def optional(rule: Check) -> Check:
    return dataclasses.replace(rule, allowed=f"{rule.allowed} or null",
                               accepts=lambda v: v is None or rule.accepts(v),
                               convert=lambda v: None if v is None else rule.convert(v))


def list_of(item: Check, *, nonempty: bool = True) -> ListOf:
    return ListOf(item, nonempty)


def _tenths(value: float) -> bool:
    return math.isfinite(value * 10) and abs(value * 10 - round(value * 10)) <= 1e-9


BOOLEAN = Check("a boolean (true or false)", lambda v: isinstance(v, bool))
TEXT = Check("a non-empty string", lambda v: isinstance(v, str) and v != "")
SEED = integer(0, MAX_SEED)
BATCH = integer(1, MAX_BATCH)
THREADS = optional(integer(1, MAX_THREADS))
# checked here, not hours later where train builds its U-Net
IMAGE_SIZE = Check(f"a multiple of 8 in 8..{MAX_IMAGE_SIZE} (the U-Nets pool it three times)",
                   lambda v: _is_int(v) and 8 <= v <= MAX_IMAGE_SIZE and v % 8 == 0)
# a guidance scale names the sample and metrics files (`_g3`, a2i.variants): `{:g}` keeps 6 significant digits
SCALE = Check("a number >= 0 of at most 6 significant digits (it names the sample files)",
              lambda v: number(0).accepts(v) and float(f"{v:g}") == v, float)
LENGTH = integer(1, MAX_LENGTH_S)  # seconds; the variant names' `<L>s`
LR = number(0, MAX_LR, open_low=True)
DEVICE = Check(f"{', '.join(DEVICES)} or cuda:<index>",
               lambda v: isinstance(v, str) and (v in DEVICES or re.fullmatch(r"cuda:\d+", v) is not None))
# as given: prepare names its index files by the length (`index_2s_...`)
SECONDS = Check(f"a positive multiple of 0.1 s up to {MAX_LENGTH_S}",
                lambda v: _is_number(v) and 0 < v <= MAX_LENGTH_S and _tenths(v))
BOX = Check(BOX_TEXT, is_box)
SPAN = Check(SPAN_TEXT, is_span)


def rule(check: Rule) -> Any:
    """A required dataclass field checked by `check`."""
    return field(metadata={"rule": check})


def nested(section: type) -> Any:
    return rule(Nested(section))


# ------------------------------------------------------------------------------------------------ parsing

S = TypeVar("S")


def parse_section(cls: type[S], key: str, values: Any, problems: list[str]) -> S | None:
    """`values` checked field by field into a `cls`; every problem (missing, unknown or bad key) goes to
    `problems`. Returns None when any was found."""
    if not isinstance(values, dict):
        problems.append(f"{key}={values!r} is not a mapping")
        return None
    before = len(problems)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    parsed = {}
    for name, spec in fields.items():
        if name in values:
            parsed[name] = spec.metadata["rule"].parse(f"{key}.{name}", values[name], problems)
        else:
            problems.append(f"{key}.{name} is missing")
    for name in values:
        if name not in fields:
            problems.append(f"{key}.{name} is not a known parameter (known: {', '.join(fields)})")
    if len(problems) > before:
        return None
    section = cls(**parsed)
    problems.extend(section.cross_checks() if isinstance(section, Section) else ())
    return section if len(problems) == before else None


class Section:
    """A params.yaml section: `NAME` is its key; `cross_checks` checks its keys against each other.

    `OPERATIONAL` names the keys that change how a stage runs but not what it computes (threads, device,
    inference batch sizes, retries; like the thread count, an inference batch size can move the last bits of a
    float result): dvc.yaml lists every other key as its stage's params, so changing one of these re-runs
    nothing (tests/test_dvc_deps.py keeps the two in step).
    """

    NAME: ClassVar[str]
    OPERATIONAL: ClassVar[tuple[str, ...]] = ()

    def cross_checks(self) -> list[str]:
        return []

    @classmethod
    def from_params(cls: type[S], values: Any) -> S:
        """The validated section (`values`: its mapping), or ConfigError listing every problem of it."""
        problems: list[str] = []
        section = parse_section(cls, cls.NAME, values, problems)
        if problems:
            raise ConfigError(problems)
        return section

    @classmethod
    def of(cls: type[S], values: Any) -> S:
        """`values` when already validated, else `from_params(values)` (library callers may pass either)."""
        return values if isinstance(values, cls) else cls.from_params(values)

    def kwargs(self) -> dict[str, Any]:
        """The section as the keyword arguments of its stage's function (nested sections as dicts)."""
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------------ sections

@dataclass(frozen=True)
class Study:
    """`study` (and `report.study`): the CFG and projection studies on one embedding variant."""

    alignment: str = rule(one_of(ALIGNMENTS))
    length: int = rule(LENGTH)
    variants: list[str] = rule(list_of(one_of(STUDIES), nonempty=False))
    epoch: int | None = rule(optional(integer(1)))

    @property
    def cell(self) -> str:
        """The embedding variant the studies train on and the CFG sweep samples, e.g. `text-2s`."""
        return Variant(self.alignment, self.length).name


@dataclass(frozen=True)
class SynthesizeConfig(Section):
    NAME = "synthesize"
    seed: int = rule(SEED)
    train_performances: int = rule(integer(1, MAX_PERFORMANCES - 1))
    validation_performances: int = rule(integer(1, MAX_PERFORMANCES - 1))
    performance_seconds: float = rule(Check(f"a multiple of 0.1 s in {2 * EDGE_SECONDS + 1:g}..{MAX_PERFORMANCE_S}",
                                           lambda v: _is_number(v) and 2 * EDGE_SECONDS + 1 <= v <= MAX_PERFORMANCE_S
                                           and _tenths(v), float))
    frame_width: int = rule(integer(1, MAX_FRAME[0]))
    frame_height: int = rule(integer(1, MAX_FRAME[1]))

    def cross_checks(self) -> list[str]:
        problems = []
        if self.frame_width < self.frame_height:
            problems.append(f"synthesize.frame_width={self.frame_width} is not >= synthesize.frame_height="
                            f"{self.frame_height} (frames are landscape, cropped to a square)")
        if self.train_performances + self.validation_performances > MAX_PERFORMANCES:
            problems.append(f"synthesize.train_performances={self.train_performances} and "
                            f"synthesize.validation_performances={self.validation_performances} number more than "
                            f"{MAX_PERFORMANCES} performances, and Sub-URMP numbers them with two digits")
        return problems


@dataclass(frozen=True)
class DownloadItem:
    url: str = rule(Check("a URL that names a file", lambda v: isinstance(v, str) and url_file_name(v) != ""))
    sha256: str = rule(Check("64 lowercase hex digits, or empty (not checked)",
                             lambda v: isinstance(v, str) and re.fullmatch(r"([0-9a-f]{64})?", v) is not None))


@dataclass(frozen=True)
class DownloadConfig(Section):
    NAME = "download"
    OPERATIONAL = ("retries",)
    source: str = rule(one_of(DOWNLOAD_SOURCES))
    local_dir: str | None = rule(optional(TEXT))
    items: list[str] = rule(list_of(one_of(DOWNLOAD_ITEMS), nonempty=False))
    retries: int = rule(integer(0))
    suburmp: DownloadItem = nested(DownloadItem)
    audioclip: DownloadItem = nested(DownloadItem)
    inception: DownloadItem = nested(DownloadItem)

    def cross_checks(self) -> list[str]:
        if self.source == "local" and self.local_dir is None:
            return ["download.local_dir=None is not a folder (needed with download.source: local)"]
        return []


@dataclass(frozen=True)
class PrepareConfig(Section):
    NAME = "prepare"
    raw: str = rule(TEXT)
    lengths: list[float] = rule(list_of(SECONDS))
    silence_peak: int = rule(integer(0, 32767))
    image_size: int = rule(IMAGE_SIZE)
    hr_image_size: int = rule(integer(1, MAX_IMAGE_SIZE))  # the super-resolution stages' targets
    crop: dict[str, list[float]] = rule(MappingOf("a mapping of instrument to box", one_of(INSTRUMENTS), BOX))
    trim: dict[str, list[float]] = rule(MappingOf("a mapping of performance to span", TEXT, SPAN))
    on_bad_file: str = rule(one_of(ON_BAD_FILE))

    def cross_checks(self) -> list[str]:
        factor, rest = divmod(self.hr_image_size, self.image_size)
        if rest or factor < 2 or factor & (factor - 1):  # the super-resolution U-Net upsamples by 2x steps
            return [f"prepare.hr_image_size={self.hr_image_size} is not prepare.image_size={self.image_size} times "
                    f"a power of two >= 2 (the super-resolution factor)"]
        return []


@dataclass(frozen=True)
class FinetuneConfig(Section):
    """`finetune` (thesis 4.3.1)."""

    NAME = "finetune"
    OPERATIONAL = ("device",)
    model_size: str = rule(one_of(MODEL_SIZES))
    checkpoint: str | None = rule(optional(TEXT))
    allow_random_init: bool = rule(BOOLEAN)
    epochs: int = rule(integer(0))
    batch_size: int = rule(integer(2, MAX_BATCH))  # the contrastive loss needs a negative
    lr: float = rule(LR)
    lr_gamma: float = rule(number(0, 1, open_low=True))
    momentum: float = rule(number(0, 1, open_high=True))
    weight_decay: float = rule(number(0))
    same_class_negatives: bool = rule(BOOLEAN)
    max_steps_per_epoch: int | None = rule(optional(integer(1)))
    bn_recalibration_batches: int = rule(integer(0))
    device: str = rule(DEVICE)
    seed: int = rule(SEED)

    def cross_checks(self) -> list[str]:
        if self.checkpoint is None and not self.allow_random_init:
            return ["finetune.checkpoint is null: the thesis fine-tunes the released, partially trained "
                    "AudioCLIP (3.2.3); add `audioclip` to download.items and set finetune.checkpoint="
                    "data/download/audioclip/AudioCLIP-Partial-Training.pt, or set finetune.allow_random_init=true"]
        if self.checkpoint is not None and self.model_size != "thesis":
            return [f"finetune.checkpoint={self.checkpoint} holds released thesis-size AudioCLIP weights, which do not "
                    f"fit finetune.model_size={self.model_size}; set model_size=thesis or checkpoint=null"]
        return []


@dataclass(frozen=True)
class EmbedConfig(Section):
    NAME = "embed"
    OPERATIONAL = ("batch_size", "device")
    batch_size: int = rule(BATCH)
    device: str = rule(DEVICE)


@dataclass(frozen=True)
class Preview:
    """`train.preview`: the dvclive image grid at every checkpoint."""

    sampler: str = rule(one_of(SAMPLERS))
    steps: int = rule(integer(1))
    guidance: float = rule(number(0))


@dataclass(frozen=True)
class TrainConfig(Section):
    NAME = "train"
    OPERATIONAL = ("threads",)
    model_size: str = rule(one_of(MODEL_SIZES))
    projection: str = rule(one_of(PROJECTIONS))
    pca_components: int = rule(integer(1))
    dropout: float = rule(number(0, 1, open_high=True))
    epochs: int = rule(integer(1))
    batch_size: int = rule(BATCH)
    max_steps_per_epoch: int | None = rule(optional(integer(1)))
    lr: float = rule(LR)
    loss_weighting: str = rule(one_of(LOSS_WEIGHTINGS))
    p_uncond: float = rule(number(0, 1))
    output_skip: bool = rule(BOOLEAN)
    context_tokens: int = rule(integer(1))
    standardize: bool = rule(BOOLEAN)
    pca_scale: bool = rule(BOOLEAN)
    ema: bool = rule(BOOLEAN)
    ema_decay: float = rule(number(0, 1, open_high=True))
    checkpoint_every: int = rule(integer(1))
    timesteps: int = rule(integer(1))
    beta_start: float = rule(number(0, 1, open_low=True, open_high=True))
    beta_end: float = rule(number(0, 1, open_low=True, open_high=True))
    compile: bool = rule(BOOLEAN)
    val_samples: int = rule(integer(1))
    preview: Preview = nested(Preview)
    threads: int | None = rule(THREADS)
    seed: int = rule(SEED)

    def cross_checks(self) -> list[str]:
        if self.beta_start >= self.beta_end:
            return [f"train.beta_start={self.beta_start!r} is not below train.beta_end={self.beta_end!r}"]
        return []

    def checkpoint_epochs(self) -> list[int]:
        """The epochs `train` saves a checkpoint at (a2i.diffusion.train.train)."""
        return checkpoint_schedule(self.epochs, self.checkpoint_every)


@dataclass(frozen=True)
class SampleConfig(Section):
    NAME = "sample"
    OPERATIONAL = ("threads",)
    sampler: str = rule(one_of(SAMPLERS))
    steps: int = rule(integer(1))
    ddpm_variance: str = rule(one_of(DDPM_VARIANCES))
    guidance: float = rule(SCALE)
    cfg_scales: list[float] = rule(list_of(SCALE, nonempty=False))  # []: no sweep beside the main guidance
    cfg_epoch: int | None = rule(optional(integer(1)))
    seeds: list[int] = rule(list_of(SEED))
    per_class: int | None = rule(optional(integer(1)))
    val_per_class: int | None = rule(optional(integer(1)))
    batch_size: int = rule(BATCH)
    threads: int | None = rule(THREADS)
    seed: int = rule(SEED)


@dataclass(frozen=True)
class ClassifyConfig(Section):
    NAME = "classify"
    epochs: int = rule(integer(1))
    batch_size: int = rule(BATCH)
    lr: float = rule(LR)
    min_accuracy: float = rule(number(0, 1))
    noise_std: float = rule(number(0))
    augment: bool = rule(BOOLEAN)
    lr_schedule: str = rule(one_of(LR_SCHEDULES))
    seed: int = rule(SEED)


@dataclass(frozen=True)
class EvaluateConfig(Section):
    NAME = "evaluate"
    OPERATIONAL = ("batch_size",)
    fid_weights: str | None = rule(optional(TEXT))
    allow_fid_classifier: bool = rule(BOOLEAN)
    bootstrap: int = rule(integer(1, MAX_BOOTSTRAP))
    batch_size: int = rule(BATCH)
    seed: int = rule(SEED)


@dataclass(frozen=True)
class TrainSRConfig(Section):
    """`train_sr`: the diffusion super-resolution model, prepare.image_size -> prepare.hr_image_size (ours: the
    thesis' future work, 6.2)."""

    NAME = "train_sr"
    OPERATIONAL = ("threads",)
    model_size: str = rule(one_of(MODEL_SIZES))
    embedding: str = rule(TEXT)  # whose train samples (their frames; with `audio`, their embeddings) it trains on
    audio: bool = rule(BOOLEAN)
    steps: int = rule(integer(1))
    batch_size: int = rule(BATCH)
    lr: float = rule(LR)
    loss_weighting: str = rule(one_of(LOSS_WEIGHTINGS))
    output_skip: bool = rule(BOOLEAN)
    t_start: int | None = rule(optional(integer(2, Schedule.timesteps)))  # sampling below it takes >= 2 steps
    residual: bool = rule(BOOLEAN)
    residual_scale: float = rule(number(0, open_low=True))
    aug_max: int = rule(integer(1, Schedule.timesteps))
    ema_decay: float = rule(number(0, 1, open_high=True))
    threads: int | None = rule(THREADS)
    seed: int = rule(SEED)

    def cross_checks(self) -> list[str]:
        try:
            Variant.parse(self.embedding)
        except ValueError as error:
            return [f"train_sr.embedding={self.embedding!r}: {error}"]
        return []


@dataclass(frozen=True)
class SampleSRConfig(Section):
    """`sample_sr`: upsampling the test images of the checkpoint selected on validation (main grid, `guidance`)."""

    NAME = "sample_sr"
    OPERATIONAL = ("threads",)
    guidance: float = rule(number(0))
    sampler: str = rule(one_of(SAMPLERS))
    steps: int = rule(integer(1))
    aug_level: int = rule(integer(0))
    batch_size: int = rule(BATCH)
    threads: int | None = rule(THREADS)
    seed: int = rule(SEED)


@dataclass(frozen=True)
class ReportConfig(Section):
    NAME = "report"
    guidance: float = rule(SCALE)
    lengths: list[int] = rule(list_of(LENGTH))
    alignments: list[str] = rule(list_of(one_of(ALIGNMENTS)))
    study: Study = nested(Study)
    dataset: str = rule(one_of(DATASETS))


SECTIONS: tuple[type[Section], ...] = (SynthesizeConfig, DownloadConfig, PrepareConfig, FinetuneConfig, EmbedConfig,
                                       TrainConfig, SampleConfig, ClassifyConfig, EvaluateConfig, TrainSRConfig,
                                       SampleSRConfig, ReportConfig)


@dataclass(frozen=True)
class Grid:
    """The top-level keys: the experiment grid (thesis 4.3) and the studies (4.4, 4.5)."""

    lengths: list[int] = rule(list_of(LENGTH))
    alignments: list[str] = rule(list_of(one_of(ALIGNMENTS)))
    study: Study = nested(Study)

    def has_cell(self, alignment: str, length: int) -> bool:
        """Whether the grid fine-tunes, embeds and trains (`alignment`, `length`)."""
        return alignment in self.alignments and length in self.lengths


# ------------------------------------------------------------------------------------------------ all of it

@dataclass(frozen=True)
class Params:
    grid: Grid
    sections: dict[str, Section]


def check_params(params: dict[str, Any]) -> Params:
    """Every section and grid key of a params.yaml, and what they must agree on; ConfigError lists every
    problem found."""
    problems: list[str] = []
    if not isinstance(params, dict):
        raise ConfigError([f"params.yaml holds {params!r}, not a mapping of sections"])
    grid_keys = {f.name for f in dataclasses.fields(Grid)}
    grid = parse_section(Grid, "params", {k: v for k, v in params.items() if k in grid_keys}, problems)
    sections = {cls.NAME: _parse_named(cls, params, problems) for cls in SECTIONS}
    for key in params.keys() - grid_keys - sections.keys():
        problems.append(f"{key} is not a known section (known: {', '.join([*grid_keys, *sections])})")
    problems = [p.removeprefix("params.") for p in problems]
    problems += _lengths_prepared(grid, sections["prepare"]) + _sweep_checkpoint(sections["train"], sections["sample"])
    problems += _fit_synthetic(sections["prepare"], sections["synthesize"])
    problems += _study_in_grid(grid) + _sr_embedding_in_grid(grid, sections["train_sr"])
    problems += _sr_audio_of_one_cell(grid, sections["train_sr"])
    problems += _dataset_named(sections["prepare"], sections["report"])
    problems += _sr_aug_level(sections["train_sr"], sections["sample_sr"])
    problems += _sr_steps(sections["train_sr"], sections["sample_sr"])
    problems += _steps_within(sections["train"], sections["sample"])
    problems += _guidance_trained(sections["train"], sections["sample"])
    problems += _pca_width(grid, sections["train"])
    problems += _studies_against_fc(grid, sections["train"])
    problems += _mirrors(grid, sections["sample"], sections["report"], sections["sample_sr"])
    problems += _weights_downloaded(sections["download"], sections["finetune"], sections["evaluate"])
    if problems:
        raise ConfigError(problems)
    return Params(grid, sections)


# What no one section can check alone; each check needs its sections valid (None: their problems are reported).

def _weights_downloaded(download: DownloadConfig | None, finetune: FinetuneConfig | None,
                        evaluate: EvaluateConfig | None) -> list[str]:
    """A weights file in an item's download folder needs the item in download.items: `download` writes every
    item's folder, requested or not, so DVC would not notice, and the run would stop at its first reader."""
    if download is None or finetune is None or evaluate is None:
        return []
    paths = {"audioclip": ("finetune.checkpoint", finetune.checkpoint),
             "inception": ("evaluate.fid_weights", evaluate.fid_weights)}
    return [f"{key}={path} lies in {(DOWNLOADS / item).as_posix()}, but download.items={download.items} does not "
            f"fetch {item}" for item, (key, path) in paths.items()
            if path is not None and PurePosixPath(path).is_relative_to(DOWNLOADS / item) and item not in download.items]


def _lengths_prepared(grid: Grid | None, prepare: PrepareConfig | None) -> list[str]:
    if grid is None or prepare is None:
        return []
    problems = [f"lengths={length!r} is not in prepare.lengths={prepare.lengths!r} (nothing is cut at that length)"
                for length in grid.lengths if length not in prepare.lengths]
    # The classifiers and the FID references read the distinct frames of the smallest whole-second length prepared
    # (a2i.evaluation.classifier.real_split); dvc.yaml declares that index as lengths[0].
    whole = [int(length) for length in prepare.lengths if float(length).is_integer()]
    if not problems and min(whole) != grid.lengths[0]:
        problems.append(f"lengths[0]={grid.lengths[0]!r} is not the smallest whole-second length of prepare.lengths="
                        f"{prepare.lengths!r}, whose index the classifiers and FID references read (dvc.yaml "
                        f"declares it as lengths[0])")
    return problems


def _study_in_grid(grid: Grid | None) -> list[str]:
    if grid is None or grid.has_cell(grid.study.alignment, grid.study.length):
        return []
    return [f"study.alignment={grid.study.alignment!r} and study.length={grid.study.length!r} are not a cell of the "
            f"grid (alignments={grid.alignments!r}, lengths={grid.lengths!r}): the studies train on that cell's "
            f"embeddings, and the CFG sweep samples its model"]


def _sr_embedding_in_grid(grid: Grid | None, train_sr: TrainSRConfig | None) -> list[str]:
    if grid is None or train_sr is None:
        return []
    embedding = Variant.parse(train_sr.embedding)
    if embedding.study is None and grid.has_cell(embedding.alignment, embedding.length):
        # dvc.yaml declares train_sr's index at study.length (a study outside the grid is reported on its own)
        if embedding.length != grid.study.length and grid.has_cell(grid.study.alignment, grid.study.length):
            return [f"train_sr.embedding={train_sr.embedding!r} is not of study.length={grid.study.length!r} s, "
                    "whose train index dvc.yaml declares for train_sr"]
        return []
    return [f"train_sr.embedding={train_sr.embedding!r} is not a cell of the grid (alignments={grid.alignments!r}, "
            f"lengths={grid.lengths!r}): no stage writes its embeddings"]


def _dataset_named(prepare: PrepareConfig | None, report: ReportConfig | None) -> list[str]:
    """The report says which data it ran on (the recipe card pins Sub-URMP): the name must be the data's."""
    if prepare is None or report is None:
        return []
    actual = "synthetic" if _synthetic(prepare) else "suburmp"
    if report.dataset == actual:
        return []
    return [f"report.dataset={report.dataset!r} is not {actual!r}, the data prepare.raw={prepare.raw!r} reads"]


def _sr_audio_of_one_cell(grid: Grid | None, train_sr: TrainSRConfig | None) -> list[str]:
    """An audio-conditioned upsampler takes the embeddings it was trained on; sample_sr upsamples the cell that
    validation selects, which is known only after every cell is trained."""
    if grid is None or train_sr is None or not train_sr.audio:
        return []
    cells = len(grid.alignments) * len(grid.lengths)
    if cells == 1:
        return []
    return [f"train_sr.audio=true conditions on the {train_sr.embedding} embeddings (train_sr.embedding), but "
            f"sample_sr upsamples the cell selected on validation, one of the grid's {cells}: set "
            "train_sr.audio=false, or make that cell the grid"]


def _sr_aug_level(train_sr: TrainSRConfig | None, sample_sr: SampleSRConfig | None) -> list[str]:
    if train_sr is None or sample_sr is None or sample_sr.aug_level < train_sr.aug_max:
        return []
    return [f"sample_sr.aug_level={sample_sr.aug_level!r} is not below train_sr.aug_max={train_sr.aug_max!r} (the "
            f"super-resolution model is trained on augmentation levels [0, aug_max))"]


def _sr_steps(train_sr: TrainSRConfig | None, sample_sr: SampleSRConfig | None) -> list[str]:
    if train_sr is None or sample_sr is None:
        return []
    trained = train_sr.t_start or Schedule.timesteps
    if sample_sr.steps > trained:
        return [f"sample_sr.steps={sample_sr.steps!r} is more than the {trained} timesteps the super-resolution "
                f"model is trained on (train_sr.t_start={train_sr.t_start!r}, or the schedule's "
                f"{Schedule.timesteps})"]
    if train_sr.t_start and sample_sr.steps < 2:
        return [f"sample_sr.steps={sample_sr.steps!r}: a chain from train_sr.t_start={train_sr.t_start!r} takes "
                f">= 2 steps (its last is at t = 0)"]
    return []


def _steps_within(train: TrainConfig | None, sample: SampleConfig | None) -> list[str]:
    """A sampler takes at most one step per trained timestep."""
    if train is None or sample is None:
        return []
    steps = {"sample.steps": sample.steps, "train.preview.steps": train.preview.steps}
    return [f"{key}={value!r} is more than train.timesteps={train.timesteps!r} (a sampler takes at most one step "
            f"per trained timestep)" for key, value in steps.items() if value > train.timesteps]


def _guidance_trained(train: TrainConfig | None, sample: SampleConfig | None) -> list[str]:
    """Guidance other than 1 needs the null condition, which train.p_uncond 0 never trains (as
    a2i.diffusion.sampling.checkpoint_guidance refuses for one checkpoint)."""
    if train is None or sample is None or train.p_uncond > 0:
        return []
    guided = [(key, value) for key, value, unguided in (
        ("sample.guidance", sample.guidance, sample.guidance == 1),
        ("sample.cfg_scales", sample.cfg_scales, set(sample.cfg_scales) <= {1})) if not unguided]
    return [f"{key}={value!r} asks for guidance other than 1, but train.p_uncond=0 trains no null condition for it "
            f"(the nocfg study is the control without guidance)" for key, value in guided]


def _pca_width(grid: Grid | None, train: TrainConfig | None) -> list[str]:
    if grid is None or train is None or train.pca_components == EMB_DIM:
        return []
    if train.projection != "pca" and not (grid.study.variants and "pca" in grid.study.variants):
        return []
    return [f"train.pca_components={train.pca_components!r} is not {EMB_DIM}, the U-Net's time-embedding width that "
            f"the PCA projection feeds (thesis 4.5)"]


def _studies_against_fc(grid: Grid | None, train: TrainConfig | None) -> list[str]:
    """The projection and encoding-layer studies (thesis 4.5, 5.4) compare against the FC projection: with
    train.projection=pca every cell projects by PCA, and they would compare PCA with itself."""
    if grid is None or train is None or train.projection != "pca":
        return []
    return [f"study.variants={grid.study.variants!r} holds {variant!r}, a study against the FC projection, but "
            f"train.projection='pca' projects every cell by PCA" for variant in ("pca", "nonorm")
            if variant in grid.study.variants]


def _mirrors(grid: Grid | None, sample: SampleConfig | None, report: ReportConfig | None,
             sample_sr: SampleSRConfig | None) -> list[str]:
    """Keys that repeat another (conf/ interpolates them): a stage reads its own section, and what the stage of
    the other key wrote."""
    if grid is None or sample is None or report is None or sample_sr is None:
        return []
    written = "the report reads what the pipeline wrote for"
    mirrored = [("report.guidance", report.guidance, "sample.guidance", sample.guidance, written),
                ("sample_sr.guidance", sample_sr.guidance, "sample.guidance", sample.guidance,
                 "sample_sr upsamples the checkpoint selected at"),
                ("report.lengths", report.lengths, "lengths", grid.lengths, written),
                ("report.alignments", report.alignments, "alignments", grid.alignments, written),
                ("report.study", dataclasses.asdict(report.study), "study", dataclasses.asdict(grid.study), written),
                ("sample.cfg_epoch", sample.cfg_epoch, "study.epoch", grid.study.epoch,
                 "the report reads the CFG sweep at")]
    return [f"{key}={ours!r} is not {source}={theirs!r} ({why} {source})"
            for key, ours, source, theirs, why in mirrored if ours != theirs]


def _sweep_checkpoint(train: TrainConfig | None, sample: SampleConfig | None) -> list[str]:
    if train is None or sample is None or sample.cfg_epoch is None or sample.cfg_epoch in train.checkpoint_epochs():
        return []
    return [f"sample.cfg_epoch={sample.cfg_epoch!r} is not a checkpoint epoch of train.epochs={train.epochs} and "
            f"train.checkpoint_every={train.checkpoint_every} (study.epoch sets it; null: the final one)"]


def _fit_synthetic(prepare: PrepareConfig | None, synthesize: SynthesizeConfig | None) -> list[str]:
    """On the synthetic data the longest sample is known before it exists: a validation performance is cut in
    halves, val samples from the first and test samples from the second (a2i.data.prepare.select_samples)."""
    if prepare is None or synthesize is None or not _synthetic(prepare):
        return []
    longest = int(round(synthesize.performance_seconds * 10)) // 2 / 10
    return [f"prepare.lengths[{i}]={length!r} is not at most {longest:g} s, half of synthesize.performance_seconds="
            f"{synthesize.performance_seconds:g} (val and test samples each come from one half of a validation "
            f"performance)" for i, length in enumerate(prepare.lengths) if length > longest + 1e-9]


def _synthetic(prepare: PrepareConfig) -> bool:
    """Whether `prepare` reads what `synthesize` writes (the data=synthetic group)."""
    return PurePosixPath(prepare.raw) == PurePosixPath(SYNTHETIC) / "Sub-URMP"


def _parse_named(cls: type[Section], params: dict[str, Any], problems: list[str]) -> Section | None:
    if cls.NAME not in params:
        problems.append(f"{cls.NAME} is missing (a section of params.yaml)")
        return None
    return parse_section(cls, cls.NAME, params[cls.NAME], problems)


def load_section_config(cls: type[S], path: str | Path = "params.yaml") -> S:
    """A stage's own section of params.yaml, validated (ConfigError listing its problems)."""
    problems: list[str] = []
    section = _parse_named(cls, load_params(path), problems)
    if problems:
        raise ConfigError(problems)
    return section


def load_grid_config(path: str | Path = "params.yaml") -> Grid:
    """The experiment grid (the top-level `lengths`, `alignments`, `study`), validated."""
    problems: list[str] = []
    params = load_params(path)
    grid = parse_section(Grid, "params", {f.name: params.get(f.name) for f in dataclasses.fields(Grid)}, problems)
    if problems:
        raise ConfigError([p.removeprefix("params.") for p in problems])
    return grid
