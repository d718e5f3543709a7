"""The thesis' recipe as one table: every hyperparameter and choice the pipeline's parameters map to, with the
thesis section that states it.

`profile=thesis` (with `data=suburmp`) composes to exactly these values (tests/test_thesis.py), so the recipe
cannot drift silently. Where the thesis is silent the entry says so and takes the value of the code it built
on (Capelle's conditional DDPM, the AudioCLIP reference training), or says which code's value it takes instead.
`departures(params)` diffs a run's parameters against the table: the report's recipe card lists the result,
never a hand-written list.

Kinds: `size` - the amount of work and the model size (a CPU demo must shrink them); `method` - how the
thesis trains, samples and scores (a departure changes the science and says why in `why`); `addition` -
ours, beyond the thesis, adding outputs without changing the thesis' own (e.g. selection on validation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AUDIOCLIP_CHECKPOINT = "data/download/audioclip/AudioCLIP-Partial-Training.pt"
INCEPTION_WEIGHTS = "data/download/inception/pt_inception-2015-12-05-6726825d.pth"


@dataclass(frozen=True)
class Entry:
    key: str  # dotted params.yaml key
    value: Any  # the thesis' value
    section: str  # where the thesis states it ("silent: ..." where it does not)
    kind: str = "method"  # size | method | addition
    why: str = ""  # what a different value does, and why a profile may choose one


def _e(key: str, value: Any, section: str, kind: str = "method", why: str = "") -> Entry:
    return Entry(key, value, section, kind, why)


RECIPE: tuple[Entry, ...] = (
    # -- the experiment grid (4.3) and studies (4.4, 4.5)
    _e("lengths", [1, 2, 3, 4, 5], "4.2.1, 4.3.2", "size"),
    _e("alignments", ["text", "frozen", "mutual"], "4.3.1", "size"),
    _e("train.checkpoint_every", 10, "4.3.3", "size"),
    _e("sample.cfg_scales", [1, 3, 5, 7, 9, 11], "4.4", "size"),
    _e("study.alignment", "text", "4.4, 4.5", "size"),
    _e("study.length", 4, "4.4, 4.5", "size"),
    _e("study.variants", ["nocfg", "pca", "nonorm"], "4.4, 4.5, 5.4 (Figure 5.10)", "size"),
    _e("study.epoch", 70, "Tables 5.7 and 5.9 repeat Table 5.2's text-4s epoch-70 cell (68.66%)", "method",
       "null: the final checkpoint; the thesis' studies use epoch 70"),
    _e("sample.seeds", [0], "silent: one sampling run per checkpoint (4.3.3)", "size"),
    # -- data (4.2.1)
    _e("report.dataset", "suburmp", "4.2 (Sub-URMP)", "method",
       "synthetic: the embedded stand-in with Sub-URMP's layout (recorded SoundFont timbres, drawn players); its "
       "numbers are not comparable with the thesis'"),
    _e("prepare.image_size", 64, "4.2.1", "size"),
    _e("prepare.silence_peak", 450, "4.2.1"),
    _e("prepare.lengths", [1, 2, 3, 4, 5], "4.2.1 (the lengths cut)", "size"),
    _e("prepare.on_bad_file", "error", "silent: ours, a file prepare cannot read stops the run", "method",
       "skip: such files are left out, each named in the log"),
    # -- AudioCLIP fine-tuning (3.2, 4.3.1)
    _e("finetune.model_size", "thesis", "3.2 (ESResNeXt-fbsp audio head, CLIP RN50 towers, 1024-d)", "size"),
    _e("finetune.checkpoint", AUDIOCLIP_CHECKPOINT, "3.2.3 (the released partially trained weights)", "method",
       "null: a randomly initialised AudioCLIP; Table 5.1's epoch-0 column and everything after it change meaning"),
    _e("finetune.allow_random_init", False, "3.2.3", "method",
       "true lets a run without the released weights go on (nothing to download offline)"),
    _e("finetune.epochs", 5, "4.3.1", "size"),
    _e("finetune.batch_size", 10, "4.3.1", "size"),
    _e("finetune.lr", 5.0e-05, "silent: the AudioCLIP reference protocol (SGD, Nesterov)", "method",
       "a random-init head learns nothing at the fine-tuning rate of a pretrained one"),
    _e("finetune.lr_gamma", 0.96, "silent: the AudioCLIP reference protocol"),
    _e("finetune.momentum", 0.9, "silent: the AudioCLIP reference protocol"),
    _e("finetune.weight_decay", 0.0005, "silent: the AudioCLIP reference protocol"),
    _e("finetune.same_class_negatives", False, "4.3.1 (pushed away from other instruments' embeddings)"),
    _e("finetune.max_steps_per_epoch", None, "4.3.1 (whole epochs)", "size"),
    _e("finetune.bn_recalibration_batches", 0, "silent: the reference keeps running batch-norm statistics",
       "method", "a head trained at a high learning rate needs its batch-norm statistics re-estimated"),
    # -- the diffusion model (3.3.2) and its training (3.3.3, 4.3.3)
    _e("train.model_size", "thesis", "3.3.2 (a U-Net whose blocks are separated by cross-attention: read as "
       "attention after every block; the widths 64/128/256/256 and two DoubleConvs per block, where the text "
       "describes one, are Capelle's code's)", "size"),
    _e("train.projection", "fc", "3.3.2 (4.5 studies PCA as a variant)"),
    _e("train.pca_components", 256, "5.4 (1024-d embeddings reduced to 256)"),
    _e("train.dropout", 0.1, "silent: 5.4 names Dropout and LayerNorm in the encoding layer, not the rate"),
    _e("train.epochs", 100, "4.3.1, 4.3.3", "size"),
    _e("train.batch_size", 12, "4.3.1", "size"),
    _e("train.max_steps_per_epoch", None, "4.3.3 (whole epochs)", "size"),
    _e("train.lr", 0.0003, "silent: 3.3.3 names Adam without a rate; 3e-4, constant, as the DDPM code Capelle's "
       "is forked from (dome272's; Capelle's own: AdamW 5e-3, one-cycle)", "method",
       "a short run at a larger batch takes larger steps"),
    _e("train.loss_weighting", "eps", "3.3.3, Algorithm 1 (the noise MSE)", "method",
       "v: the noise MSE divided by abar_t (the MSE of the implied v), so the noisy steps that decide the "
       "instrument weigh as much as the rest; a short run learns the instrument sooner"),
    _e("train.p_uncond", 0.2, "3.3.3 (unconditional 20% of the time: read per sample, as Ho & Salimans; "
       "Capelle's code drops whole batches)"),
    _e("train.output_skip", False, "3.3.2 (a final convolution predicts the noise)", "method",
       "true: eps = sqrt(1-abar) x_t + sqrt(abar) F spares a small U-Net learning the identity at high noise"),
    _e("train.context_tokens", 1, "3.3.2 (cross-attention to the audio condition)", "method",
       "more than one token lets image positions attend to different parts of the condition"),
    _e("train.standardize", False, "3.3.2 (the encoding layer takes the raw embedding)", "method",
       "true: the embedding is centred and scaled first; a random-init AudioCLIP's embeddings share one "
       "dominant direction the layer would have to learn to cancel"),
    _e("train.pca_scale", False, "5.4 (PCA has no normalisation: its brightness swings are the finding)",
       "method", "true: PCA output at unit RMS, which removes the effect Table 5.9 measures"),
    _e("train.ema", True, "silent: Capelle's code keeps an EMA of the weights"),
    _e("train.ema_decay", 0.995, "silent: Capelle's code (its first 2,000 steps copy the weights; ours warm up "
       "as min(decay, (1+n)/(10+n)): both plain 0.995 long before a checkpoint)"),
    _e("train.timesteps", 1000, "3.3.3"),
    _e("train.beta_start", 0.0001, "silent: 2.3.3 says only small betas; Ho et al.'s linear schedule, as Capelle's "
       "code"),
    _e("train.beta_end", 0.02, "silent: 2.3.3 says only small betas; Ho et al.'s linear schedule, as Capelle's code"),
    _e("train.val_samples", 256, "ours: the validation loss curve in the dvclive history", "addition"),
    _e("train.preview.sampler", "dpmpp", "ours: preview images in the dvclive history", "addition"),
    _e("train.preview.steps", 25, "ours: preview images in the dvclive history", "addition"),
    _e("train.preview.guidance", 3.0, "ours: preview images in the dvclive history", "addition"),
    # -- sampling (3.3.3)
    _e("sample.sampler", "ddpm", "3.3.3, Algorithm 2 (ancestral DDPM)", "method",
       "dpmpp: DPM-Solver++ 2M, the same model sampled in 25 steps instead of 1000"),
    _e("sample.steps", 1000, "3.3.3, Algorithm 2 (t = T..1, 1000 steps; the text and Capelle's loop take T - 1 "
       "= 999)", "method",
       "fewer steps with a fast solver"),
    _e("sample.ddpm_variance", "fixed_large", "2.3.3 (a constant beta_t I), as Capelle's code"),
    _e("sample.guidance", 3.0, "3.3.3"),
    _e("sample.cfg_epoch", 70, "Tables 5.6-5.8 (epoch 70, see study.epoch)", "method",
       "null: the final checkpoint"),
    _e("sample.per_class", None, "4.3.3 (the whole test split)", "size"),
    _e("sample.val_per_class", 20, "ours: validation conditions for model selection", "addition"),
    _e("sample.batch_size", 64, "silent: the batch groups the conditions; it decides which noise each image draws",
       "size"),
    # -- super-resolution: the thesis' first item of future work (6.2), ours
    _e("prepare.hr_image_size", 256, "6.2 (future work: the GAN peers' 256x256, Table 5.3)", "addition"),
    _e("train_sr.model_size", "thesis", "6.2 (future work; the base U-Net's widths)", "addition"),
    *(_e(key, value, "6.2 (future work): ours", "addition") for key, value in {
        "train_sr.embedding": "text-4s", "train_sr.audio": False, "train_sr.steps": 20000, "train_sr.batch_size": 16,
        "train_sr.lr": 0.002, "train_sr.loss_weighting": "eps", "train_sr.output_skip": True, "train_sr.t_start": 150,
        "train_sr.residual": False, "train_sr.residual_scale": 1.0, "train_sr.aug_max": 50,
        "train_sr.ema_decay": 0.995, "sample_sr.guidance": 3.0, "sample_sr.sampler": "dpmpp", "sample_sr.steps": 6,
        "sample_sr.aug_level": 0, "sample_sr.batch_size": 65}.items()),
    # -- evaluation (2.4.3, 5.2.2, 5.2.3)
    _e("classify.noise_std", 0.0, "2.4.3, 4.3.1 (a CNN trained on the real images)", "method",
       "pixel noise in training makes adherence judge the instrument shown rather than sampler noise left in "
       "a small model's images"),
    _e("classify.augment", False, "2.4.3 (no augmentation stated)", "method",
       "random shifts: framing varies between videos"),
    _e("classify.lr_schedule", "constant", "silent: plain training", "method",
       "onecycle reaches the accuracy gate in fewer epochs"),
    _e("classify.epochs", 10, "silent: 2.4.3 gives no training length", "size"),
    _e("classify.lr", 0.001, "silent: 2.4.3 and 4.3.1 give no training settings; Adam at 1e-3", "method",
       "another rate trains another judge of adherence"),
    _e("classify.batch_size", 64, "silent: as classify.lr", "method", "another batch trains another judge"),
    _e("evaluate.bootstrap", 1000, "ours: bootstrap confidence intervals beside the thesis' point figures",
       "addition"),
    _e("classify.min_accuracy", 0.99, "4.3.1 (its classifier reached 100% on its test set); ours: the test "
       "accuracy a judge must reach before it scores", "addition"),
    _e("evaluate.fid_weights", INCEPTION_WEIGHTS, "2.4.2, 5.2.3 (FID on Inception-v3's final layer; pytorch-fid's "
       "weights are our choice)", "method",
       "null: without Inception weights there is no FID"),
    _e("evaluate.allow_fid_classifier", False, "5.2.3", "method",
       "true: report fid_classifier (the Frechet distance in the instrument classifier's features) when there "
       "are no Inception weights; never comparable with the thesis' FID"),
)

# Chosen per dataset rather than stated by the thesis: listed on the card, not pinned.
UNPINNED = {
    "prepare.crop": "4.2.1: boxes chosen by hand per instrument, unpublished (data=suburmp ships estimates; "
                    "`a2i crops` draws them)",
    "prepare.trim": "4.2.1: near-silent starts and ends removed by hand, unpublished",
}

# Composed by the thesis profile but not the recipe: where the files are (the data group), the embedded data's
# section (read only with data=synthetic), the report's copies of keys pinned above (check refuses a copy that
# differs), each stage's seed (another seed is another draw of the same recipe) and torch.compile (the same
# computation in other kernels, which round differently). With RECIPE, UNPINNED and each section's OPERATIONAL
# keys they cover every key (tests/test_thesis.py).
NOT_RECIPE = ("synthesize.", "download.", "prepare.raw", "report.lengths", "report.alignments", "report.study.",
              "report.guidance", "train.compile")


def not_recipe(key: str) -> bool:
    return key.startswith(NOT_RECIPE) or key.endswith(".seed")


def value_at(params: dict[str, Any], key: str) -> Any:
    """`params` at the dotted `key`, a nested section whole ({"prepare": {"crop": {...}}}, "prepare.crop"); None
    where it is missing."""
    value: Any = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train.lr": 0.0003, ...}: nested sections as dotted keys, lists kept whole."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


@dataclass(frozen=True)
class Departure:
    key: str
    thesis: Any
    ours: Any
    section: str
    kind: str
    why: str


def _same(a: Any, b: Any) -> bool:
    """Equal as configuration values: 1 == 1.0 and a list equals its tuple, but a bool equals only a bool."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def departures(params: dict[str, Any]) -> list[Departure]:
    """Every table entry whose value in `params` differs from the thesis' (a missing key is a departure too)."""
    flat = flatten(params)
    missing = object()
    found = []
    for entry in RECIPE:
        ours = flat.get(entry.key, missing)
        if ours is missing or not _same(ours, entry.value):
            found.append(Departure(entry.key, entry.value, "missing" if ours is missing else ours, entry.section,
                                   entry.kind, entry.why))
    return found
