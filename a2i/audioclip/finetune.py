"""Contrastive fine-tuning of the AudioCLIP audio head (thesis 4.3.1) and its query accuracy (thesis 5.2.1).

Three alignments, the audio head always trained:
- `text`: audio against the frozen text head's embedding of the instrument name;
- `frozen`: audio against the frozen image head's embedding of the sample's frame;
- `mutual`: as `frozen`, with the image head trained too.
The loss is the reference's: symmetric cross-entropy over scaled cosine logits of the pair in use plus the
fbsp filter-norm term. A batch may hold several samples of one instrument; since the task is to tell
instruments apart, their cross pairs are not negatives (masked) unless `same_class_negatives` is set.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from dvclive import Live
from torch import nn
from torch.utils.data import WeightedRandomSampler
from tqdm import tqdm

from a2i.audioclip.checkpoint import create_model
from a2i.audioclip.embed import embed_audio, parse_embedding
from a2i.audioclip.model import AudioCLIP
from a2i.audioclip.preprocess import preprocess_images
from a2i.config import FinetuneConfig
from a2i.data.dataset import PreparedDataset
from a2i.data.layout import INSTRUMENTS
from a2i.devices import select_device
from a2i.io import atomic_dir, atomic_path, save_torch, write_json
from a2i.variants import METRICS, PREPARED, audioclip_model, live_path

log = logging.getLogger(__name__)

# the reference's partner of the audio head, and the logit scale of that pair, per alignment
PARTNER = {"text": "text", "frozen": "image", "mutual": "image"}
NO_DECAY_PREFIXES = ("audio.fbsp.", "logit_scale_ai", "logit_scale_at")


def class_texts() -> list[str]:
    """The text of each class in label order: the instrument name, no template (as AudioCLIP's zero-shot)."""
    return [name.replace("_", " ") for name in INSTRUMENTS]


def contrastive_loss(audio: torch.Tensor, partner: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor,
                     same_class_negatives: bool) -> torch.Tensor:
    """CE(audio -> partner) + CE(partner -> audio) over `scale` * cosine logits, targets on the diagonal.

    Without `same_class_negatives` the logits of different samples of one class are masked out.
    """
    logits = scale * F.normalize(audio, dim=-1) @ F.normalize(partner, dim=-1).T
    if not same_class_negatives:
        same = labels[:, None] == labels[None, :]
        same &= ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        logits = logits.masked_fill(same, float("-inf"))
    targets = torch.arange(len(labels), device=logits.device)
    return F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)


def balanced_sampler(labels: np.ndarray, num_samples: int, generator: torch.Generator) -> WeightedRandomSampler:
    """Rows drawn with replacement so that every class is equally likely (stratified for class imbalance)."""
    counts = np.bincount(labels)
    weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples, replacement=True, generator=generator)


def image_query_sets(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, one image row per class present: its own image for its class, a random one for the others.

    Returns (rows [n, classes], target column [n]): the query is right when the target column scores highest.
    """
    classes = np.unique(labels)
    members = {c: np.flatnonzero(labels == c) for c in classes}
    rng = np.random.default_rng(seed)
    rows = np.stack([rng.choice(members[c], size=len(labels)) for c in classes], axis=1)
    own = np.searchsorted(classes, labels)
    rows[np.arange(len(labels)), own] = np.arange(len(labels))
    return rows, own


def query_accuracy(audio: np.ndarray, queries: np.ndarray, targets: np.ndarray, query_rows: np.ndarray | None) -> float:
    """Share of samples whose most cosine-similar query is the target.

    Text: `queries` is [classes, dim], `query_rows` None and `targets` the labels. Image: `queries` is the
    image embedding of every sample and `query_rows`/`targets` come from `image_query_sets`.
    """
    a = F.normalize(torch.as_tensor(audio), dim=-1)
    q = F.normalize(torch.as_tensor(queries), dim=-1)
    if query_rows is None:
        scores = a @ q.T
    else:
        scores = torch.einsum("nd,nkd->nk", a, q[torch.as_tensor(query_rows)])
    return float((scores.argmax(dim=1).numpy() == targets).mean())


def setup_optimizer(model: AudioCLIP, alignment: str, config: FinetuneConfig) -> torch.optim.SGD:
    """Freeze all but the trained heads; SGD (Nesterov) without weight decay on fbsp and the audio logit scales."""
    trained = ("audio.", "logit_scale_ai", "logit_scale_at") + (("visual.",) if alignment == "mutual" else ())
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(trained))
        if param.requires_grad:
            (no_decay if name.startswith(NO_DECAY_PREFIXES) else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)


class _Cell:
    """One (alignment, length) fine-tuning run: the model, its data and the partner embeddings."""

    def __init__(self, model: AudioCLIP, alignment: str, train, test, config: FinetuneConfig):
        self.model, self.alignment, self.train, self.test, self.config = model, alignment, train, test, config
        self.partner = PARTNER[alignment]
        self.device = model.device
        self.train_images = train.images() if self.partner == "image" else None
        self.test_images = test.images() if self.partner == "image" else None
        if self.partner == "text":
            model.eval()
            with torch.no_grad():
                self.text = model.encode_text(class_texts())
        self.query_rows, self.query_targets = (image_query_sets(test.labels, config.seed) if self.partner == "image"
                                               else (None, test.labels))

    def _pixels(self, images: np.ndarray) -> torch.Tensor:
        return preprocess_images(torch.from_numpy(images), self.model.image_size)

    def partner_embeddings(self, rows: np.ndarray, labels: torch.Tensor) -> torch.Tensor:
        if self.partner == "text":
            return self.text[labels]
        pixels = self._pixels(self.train_images[rows])
        with torch.set_grad_enabled(self.alignment == "mutual"):
            return self.model.encode_image(pixels)

    def step(self, rows: np.ndarray) -> torch.Tensor:
        labels = torch.as_tensor(self.train.labels[rows], device=self.device)
        audio = self.model.encode_audio(torch.from_numpy(self.train.audio(rows)).float())
        scale = self.model.logit_scales()["audio_" + self.partner]
        loss = contrastive_loss(audio, self.partner_embeddings(rows, labels), labels, scale,
                                self.config.same_class_negatives)
        return loss + self.model.audio.loss_ttf()

    def train_mode(self) -> None:
        # frozen towers keep their batch-norm statistics
        self.model.eval()
        self.model.audio.train()
        self.model.visual.train(self.alignment == "mutual")

    def recalibrate_batchnorm(self, batches: np.ndarray) -> None:
        """Re-estimate the trained heads' batch-norm statistics as plain means over `batches` (precise BN).

        The running averages lag behind weights that move fast (random init at a high lr); the stale
        statistics, not the weights, then decide the eval-mode embeddings.
        """
        heads = [self.model.audio] + ([self.model.visual] if self.alignment == "mutual" else [])
        norms = [m for head in heads for m in head.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [bn.momentum for bn in norms]
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average
        self.train_mode()
        with torch.no_grad():
            for rows in batches:
                self.model.encode_audio(torch.from_numpy(self.train.audio(rows)).float())
                if self.alignment == "mutual":
                    self.model.encode_image(self._pixels(self.train_images[rows]))
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum

    def test_queries(self) -> np.ndarray:
        if self.partner == "text":
            return self.text.cpu().numpy()
        self.model.visual.eval()
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(self.test_images), self.config.batch_size):
                pixels = self._pixels(self.test_images[start : start + self.config.batch_size])
                chunks.append(self.model.encode_image(pixels).float().cpu().numpy())
        return np.concatenate(chunks)

    def evaluate(self, epoch: int) -> float:
        audio = embed_audio(self.model.audio, self.test, self.config.batch_size, desc=f"query epoch {epoch}")
        return query_accuracy(audio, self.test_queries(), self.query_targets, self.query_rows)


def finetune(model: AudioCLIP, alignment: str, train, test, config: FinetuneConfig, live=None) -> dict[str, Any]:
    """Fine-tune `model` in place on `train`; query accuracy on `test` before training and after each epoch.

    `train`/`test` are `PreparedDataset`s; `live` an optional dvclive `Live`. Returns the metrics (flat).
    """
    steps = steps_per_epoch(train, test, config)
    cell = _Cell(model, alignment, train, test, config)
    optimizer = setup_optimizer(model, alignment, config)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_gamma)
    if config.max_steps_per_epoch is not None:
        steps = min(steps, config.max_steps_per_epoch)

    generator = torch.Generator().manual_seed(config.seed)
    accuracies = [cell.evaluate(0)]
    _log(live, query_acc=accuracies[0])
    losses: list[float] = []
    for epoch in range(1, config.epochs + 1):
        cell.train_mode()
        order = _balanced_batches(train.labels, steps, config.batch_size, generator)
        total = 0.0
        progress = tqdm(order, desc=f"finetune {alignment} epoch {epoch}", unit="step", leave=False)
        for step, rows in enumerate(progress):
            loss = cell.step(rows)
            if not torch.isfinite(loss):
                raise _diverged(f"loss {loss.item()}", f"epoch {epoch}, step {step}", config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
        scheduler.step()
        if config.bn_recalibration_batches:
            cell.recalibrate_batchnorm(_balanced_batches(train.labels, config.bn_recalibration_batches,
                                                         config.batch_size, generator))
        broken = _non_finite(model, alignment)
        if broken:  # the epoch's last update, after the last loss checked above
            raise _diverged(f"{broken} holds non-finite values", f"the end of epoch {epoch}", config)
        losses.append(total / steps)
        accuracies.append(cell.evaluate(epoch))
        log.info("%s epoch %d: loss %.4f, query accuracy %.3f", alignment, epoch, losses[-1], accuracies[-1])
        _log(live, query_acc=accuracies[-1], train_loss=losses[-1])

    best = int(np.argmax(accuracies))
    metrics: dict[str, Any] = {f"query_acc_epoch{epoch}": acc for epoch, acc in enumerate(accuracies)}
    metrics.update(best_query_acc=accuracies[best], best_epoch=best, final_loss=losses[-1] if losses else None)
    return metrics


def _diverged(what: str, where: str, config: FinetuneConfig) -> ValueError:
    return ValueError(f"fine-tuning diverged ({what}) at {where}: lower parameter 'finetune.lr' (now "
                      f"{config.lr:g})")


def _non_finite(model: AudioCLIP, alignment: str) -> str | None:
    """The first tensor (weights and BatchNorm statistics) of the trained heads that is not all finite."""
    heads = {"audio": model.audio, **({"visual": model.visual} if alignment == "mutual" else {})}
    for head, module in heads.items():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                return f"{head}.{name}"
    return None


def steps_per_epoch(train, test, config: FinetuneConfig) -> int:
    """Whole batches of `train` per epoch; a split that cannot fill one (or, for `test`, is empty) is a ValueError
    naming its index file."""
    test.require_samples()
    steps = len(train) // config.batch_size
    if steps == 0:
        raise ValueError(f"{train.path} has {len(train)} samples, fewer than one batch of finetune.batch_size="
                         f"{config.batch_size}")
    return steps


def _balanced_batches(labels: np.ndarray, steps: int, batch_size: int, generator: torch.Generator) -> np.ndarray:
    """[steps, batch_size] training rows from `balanced_sampler`."""
    sampler = balanced_sampler(labels, steps * batch_size, generator)
    return np.fromiter(sampler, dtype=np.int64).reshape(steps, batch_size)


def _log(live, **values: float) -> None:
    if live is None:
        return
    for name, value in values.items():
        live.log_metric(name, value)
    live.next_step()


def heads_state(model: AudioCLIP, alignment: str, length_s: int, pretrained: bool) -> dict[str, Any]:
    """The heads file: the audio head that `embed` and `a2i generate` read and, after mutual alignment, the
    fine-tuned image head (kept for image-side use; the pipeline does not read it)."""
    return {
        "size": model.size, "alignment": alignment, "length_s": length_s, "pretrained": pretrained,
        "audio": {k: v.detach().cpu() for k, v in model.audio.state_dict().items()},
        "image": ({k: v.detach().cpu() for k, v in model.visual.state_dict().items()}
                  if alignment == "mutual" else None),
    }


def run_finetune(embedding: str, params: FinetuneConfig | dict[str, Any], prepared: str | Path = PREPARED,
                 model_path: str | Path | None = None, metrics_path: str | Path | None = None,
                 live_dir: str | Path | None = None) -> dict[str, Any]:
    """The `finetune` stage for one (alignment, length) cell: train, then write heads and metrics atomically."""
    variant = parse_embedding(embedding)
    config = FinetuneConfig.of(params)
    model_path = Path(model_path or audioclip_model(variant.embedding))
    metrics_path = Path(metrics_path or METRICS / "finetune" / f"{variant.embedding}.json")
    live_dir = Path(live_dir or live_path("finetune", variant.embedding))

    train = PreparedDataset(prepared, variant.length, "train")
    test = PreparedDataset(prepared, variant.length, "test")
    steps_per_epoch(train, test, config)  # before any output is begun
    torch.manual_seed(config.seed)  # random init (no checkpoint) is part of the run
    model, info = create_model(config.model_size, config.checkpoint)
    model.to(select_device(config.device))

    # Nothing lands unless all three are written (a run that diverges leaves no mix): the curves are staged while
    # it trains, the heads and metrics written to temporary files after it (none is left by a run killed while it
    # trains), and the three renames come last, heads, metrics, curves.
    with atomic_dir(live_dir) as staging:
        with Live(dir=str(staging), dvcyaml=False, save_dvc_exp=False) as live:
            live.log_params({"embedding": variant.embedding, **asdict(config)})
            metrics = finetune(model, variant.alignment, train, test, config, live)
        metrics = {"alignment": variant.alignment, "length_s": variant.length, "model_size": config.model_size,
                   "pretrained": info["pretrained"], "checkpoint_sha256": info.get("checkpoint_sha256"), **metrics}
        with atomic_path(metrics_path) as metrics_tmp, atomic_path(model_path) as heads_tmp:
            save_torch(heads_tmp, heads_state(model, variant.alignment, variant.length, info["pretrained"]))
            write_json(metrics_tmp, metrics)
    # The best epoch is read on the test split (the thesis' "optimal fine-tuning epoch", 5.2.1); the heads saved
    # are the last epoch's, whatever it scored.
    log.info("%s: saved the epoch-%d heads (query accuracy %.3f); the best on test, %.3f, at epoch %d",
             variant.embedding, config.epochs, metrics[f"query_acc_epoch{config.epochs}"], metrics["best_query_acc"],
             metrics["best_epoch"])
    return metrics
