"""The `train` stage: DDPM training of the conditional U-Net with classifier-free guidance dropout.

Reproducibility contract: all training randomness (data order, timesteps, noise, condition dropout) comes from
one seeded generator, dropout from the seeded global RNG, and every checkpoint holds both RNG states with the
model, EMA and optimiser. A run killed at any point therefore resumes from its newest checkpoint and ends
bitwise equal (CPU) to an uninterrupted one, with the dvclive previews of every checkpoint.

Under `torchrun --nproc_per_node N` the same function trains with DistributedDataParallel: every rank draws the
same global batch (indices, t, noise, condition-dropout mask) and takes its 1/N slice, and its Dropout layers
draw the mask of the whole global batch and apply their slice of it (`GlobalBatchDropout`): the global batch and
the gradient it averages are those of a single process, up to summation order. The Dropout masks are the single
process's on the CPU; on CUDA they are one mask of the global batch, though not the draws of a single process
(whose fused dropout kernel draws differently).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from a2i.code import code_digest
from a2i.config import TrainConfig
from a2i.data.dataset import PreparedDataset, load_embeddings
from a2i.devices import select_device, set_threads
from a2i.diffusion import checkpoint_schedule
from a2i.diffusion.checkpoint import DIGEST, checkpoints, load_checkpoint, save_checkpoint, verify_checkpoint
from a2i.diffusion.images import class_grid
from a2i.diffusion.sampling import GRAPH_WARMUP, autocast, captured, generate_images, on_side_stream
from a2i.diffusion.schedule import Schedule, add_noise
from a2i.diffusion.unet import UNet
from a2i.io import content_digest, remove_stale_temps, write_json
from a2i.variants import PREPARED, Variant, checkpoint_name, diffusion_dir, live_path

log = logging.getLogger(__name__)

# Config keys that may change between a run and its resumption without changing what the epochs compute
# (torch.compile does: its fused kernels round differently).
_RESUMABLE = ("epochs", "checkpoint_every")
# In a run's dvclive folder: the `train` settings its history of previews and validation MSE was logged with
# (they are not in the checkpoints' config: changing them does not change the training).
LOGGED_WITH = "logged_with.json"


@dataclass
class Split:
    images: torch.Tensor  # uint8 [n, S, S, 3]
    cond: torch.Tensor  # float32 [n, 1024]
    labels: np.ndarray  # int64 [n]


def load_split(variant: Variant, split: str, root: Path) -> Split:
    data = PreparedDataset(root / PREPARED, variant.length, split)
    cond = load_embeddings(root, variant.embedding, split, len(data))
    return Split(torch.from_numpy(data.images()), torch.from_numpy(cond), data.labels)


def run_config(variant: Variant, params: TrainConfig | dict, image_size: int) -> dict:
    """Everything that defines the run, stored in each checkpoint (and compared on resume); `image_size` is
    the side of the prepared images. `code` is the digest of the training code, so that a run resumes, or
    counts as already trained, only under the code that wrote its checkpoints."""
    config = TrainConfig.of(params)
    schedule = Schedule(config.timesteps, config.beta_start, config.beta_end)
    return {
        "variant": variant.name,
        "embedding": variant.embedding,
        "length_s": variant.length,
        "model": {"size": config.model_size, "projection": variant.projection(config.projection),
                  "dropout": config.dropout, "pca_components": config.pca_components,
                  "schedule": schedule.as_dict(), "image_size": image_size,
                  "output_skip": config.output_skip, "context_tokens": config.context_tokens,
                  "standardize": config.standardize, "pca_scale": config.pca_scale,
                  "encoding_norm": variant.encoding_norm(True)},
        "loss_weighting": config.loss_weighting,
        "p_uncond": variant.p_uncond(config.p_uncond),
        "batch_size": config.batch_size,
        "lr": config.lr,
        "ema": config.ema,
        "ema_decay": config.ema_decay,
        "max_steps_per_epoch": config.max_steps_per_epoch,
        "seed": config.seed,
        "epochs": config.epochs,
        "checkpoint_every": config.checkpoint_every,
        "compile": config.compile,
        "code": code_digest(__file__),  # resumed only by the same training code (a2i.code)
    }


def _same_run(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in a.keys() | b.keys() if k not in _RESUMABLE)


def _fits(model: torch.nn.Module, weights: dict) -> bool:
    """Whether checkpoint weights have the model's names and shapes (not so after a change of the U-Net code)."""
    own = model.state_dict()
    return own.keys() == weights.keys() and all(own[k].shape == weights[k].shape for k in own)


class EMA:
    """Exponential moving average of the weights with the usual warm-up: decay_n = min(decay, (1+n)/(10+n)).
    Decay 0 (`train.ema: false`) makes it an exact copy of the trained weights."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    def weight(self, step: int) -> float:
        """How far update `step` moves the average towards the weights: 1 - decay_step."""
        return 1 - min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        self.lerp(model, self.weight(step))

    @torch.no_grad()
    def lerp(self, model: torch.nn.Module, weight: float | torch.Tensor) -> None:
        """Move the average `weight` of the way to `model`'s weights (a device tensor in a CUDA graph)."""
        ema = list(self.model.parameters())
        torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], weight)


def _distributed() -> tuple[int, int]:
    """(rank, world size), initialising the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _on_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The whole training set moves to the GPU when it takes under half of the free memory."""
    if device.type == "cuda" and tensor.nbytes < torch.cuda.mem_get_info(device)[0] // 2:
        return tensor.to(device)
    return tensor


class GlobalBatchDropout(torch.nn.Dropout):
    """Dropout on rank `rank`'s 1/`world` share of the global batch with that share of the mask drawn for the whole
    global batch: every rank's global RNG is in the same state, so the ranks apply disjoint slices of one mask, on
    the CPU the one a single process draws (its dropout is `bernoulli_(1 - p)` over the batch, scaled by 1/(1-p))."""

    def __init__(self, p: float, rank: int, world: int):
        super().__init__(p)
        self.rank, self.world = rank, world

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return super().forward(x)
        n = x.shape[0]
        mask = torch.empty((self.world * n, *x.shape[1:]), dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
        return x * mask[self.rank * n:(self.rank + 1) * n].div_(1 - self.p)


def _global_batch_dropout(model: torch.nn.Module, rank: int, world: int) -> None:
    """Replace every Dropout of `model` by its `GlobalBatchDropout` (a Dropout holds no weights to keep)."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is torch.nn.Dropout:
                setattr(parent, name, GlobalBatchDropout(child.p, rank, world))


def diffusion_loss(model, x0: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   alphas_cumprod: torch.Tensor, weighting: str = "eps") -> torch.Tensor:
    """MSE between the noise and its prediction from x_t (thesis Algorithm 1), each sample weighted by
    `weighting`: `eps` 1, as in the thesis; `v` 1 / abar_t, which makes it the MSE of the implied
    v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022), since v_hat - v = (eps_hat - eps) / sqrt(abar).
    Under `eps` the noisiest steps, where the layout and so the instrument of an image is decided, weigh
    abar_t (< 0.01 for t > 672); under `v` they weigh as much as the rest."""
    with autocast(x0.device):
        eps = model(add_noise(x0, noise, t, alphas_cumprod), t, cond)
    per_sample = (eps.float() - noise).pow(2).mean(dim=(1, 2, 3))
    if weighting == "v":
        per_sample = per_sample / alphas_cumprod[t]
    return per_sample.mean()


def training_step(model: UNet, optimizer: torch.optim.Optimizer, ema: EMA, step: int, x0: torch.Tensor,
                  cond: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, weighting: str = "eps",
                  forward=None) -> torch.Tensor:
    """One optimisation step of the trainer (the loss, Adam, then the EMA update as step `step`); `forward` is the
    model as called (a DDP or compiled wrapper), by default `model` itself. Returns the detached loss."""
    loss = diffusion_loss(model if forward is None else forward, x0, cond, t, noise, model.alphas_cumprod, weighting)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    ema.update(model, step)
    return loss.detach()


def to_model_space(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x.contiguous(memory_format=torch.channels_last)


class StaticStep:
    """The trainer's step with fixed-shape inputs, for a CUDA graph (a few launches instead of hundreds: at the
    thesis' batch of 12 the eager step is launch-bound). The data lives on the device; each step copies the batch's
    indices and draws t, noise and the dropout draw from the trainer's generator into static buffers (the draws of
    `Trainer.global_batch`, in its order), then gather, loss, backward, Adam, EMA and the loss sum run as one
    graph on CUDA, eagerly elsewhere. Nothing is read back per step: the loss sum stays on the device until
    `take_total`. The optimiser must be `capturable` on CUDA."""

    def __init__(self, model: UNet, optimizer: torch.optim.Optimizer, ema: EMA, images: torch.Tensor,
                 cond: torch.Tensor, batch_size: int, p_uncond: float, weighting: str, generator: torch.Generator):
        device = images.device
        self.model, self.optimizer, self.ema, self.images, self.cond = model, optimizer, ema, images, cond
        self.p_uncond, self.weighting, self.generator = p_uncond, weighting, generator
        self.idx = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.t = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.noise = torch.zeros((batch_size, 3, *images.shape[1:3]), device=device)
        self.uniform = torch.zeros(batch_size, device=device)
        self.ema_weight = torch.zeros((), device=device)
        self.total = torch.zeros((), device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_steps = 0

    def __call__(self, idx: torch.Tensor, ema_weight: float) -> None:
        """One step on the batch of rows `idx`, the EMA moving `ema_weight` (`EMA.weight`) of the way."""
        self.idx.copy_(idx, non_blocking=True)
        self.ema_weight.fill_(ema_weight)
        size = tuple(self.idx.shape)
        torch.randint(0, self.model.schedule.timesteps, size, generator=self.generator, out=self.t)
        torch.randn(tuple(self.noise.shape), generator=self.generator, out=self.noise)
        torch.rand(size, generator=self.generator, out=self.uniform)
        if self.graph is not None:
            self.graph.replay()
        elif self.images.device.type != "cuda":
            self.eager_step()
        elif self.eager_steps < GRAPH_WARMUP:
            on_side_stream(self.eager_step)
            self.eager_steps += 1
        else:
            self.capture()
            self.graph.replay()

    def body(self) -> None:
        x0 = to_model_space(self.images[self.idx], self.images.device)
        cond = self.cond[self.idx]
        cond = torch.where((self.uniform < self.p_uncond)[:, None], torch.zeros_like(cond), cond)
        noise = self.noise.contiguous(memory_format=torch.channels_last)
        loss = diffusion_loss(self.model, x0, cond, self.t, noise, self.model.alphas_cumprod, self.weighting)
        loss.backward()
        self.optimizer.step()
        self.ema.lerp(self.model, self.ema_weight)
        self.total += loss.detach()

    def eager_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # the warm-up steps run a capturable Adam uncaptured, as they must
            warnings.filterwarnings("ignore", "This instance was constructed with capturable=True")
            self.body()

    def capture(self) -> None:
        # Gradients set to None first: backward then allocates them in the graph's own memory pool.
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = captured(self.body)

    def take_total(self) -> torch.Tensor:
        """The summed losses since the last call (a device tensor), and the sum reset."""
        total = self.total.clone()
        self.total.zero_()
        return total


class Trainer:
    def __init__(self, variant: Variant, params: TrainConfig | dict, root: Path, rank: int, world: int,
                 device: torch.device):
        self.variant, self.root, self.rank, self.world, self.device = variant, root, rank, world, device
        params = TrainConfig.of(params)
        self.train = load_split(variant, "train", root)
        self.val = load_split(variant, "val", root)
        self.config = run_config(variant, params, image_size=self.train.images.shape[1])
        # the training data too: a persisted checkpoint of the same configuration trained on other images or
        # embeddings (a new dataset, a re-fine-tuned audio head) must be retrained, not resumed as finished
        self.config["data"] = content_digest([self.train.images, self.train.cond])
        # the generator's state is the device's kind (a CPU one does not load into a CUDA one): a checkpoint of
        # the other kind is retrained, not resumed
        self.config["device"] = device.type
        self.image_shape = (3, *self.train.images.shape[1:3])
        self.run_dir = root / diffusion_dir(variant.name)
        self.preview = params.preview
        self.val_samples = params.val_samples
        if self.config["batch_size"] % world:
            raise ValueError(f"train.batch_size={self.config['batch_size']} is not divisible by {world} processes")
        self.train_images = _on_device(self.train.images, device)
        self.train_cond = _on_device(self.train.cond, device)

        torch.manual_seed(self.config["seed"])
        self.model = UNet(**self.config["model"])
        if world > 1:
            _global_batch_dropout(self.model, rank, world)
        self.model.fit_condition(self.train.cond)
        self.model.to(device, memory_format=torch.channels_last)
        self.ema = EMA(self.model, self.config["ema_decay"] if self.config["ema"] else 0.0)
        # CUDA graphs where they apply: one process, no torch.compile (it would wrap the step itself), data on the GPU
        graphed = device.type == "cuda" and world == 1 and not self.config["compile"] and \
            self.train_images.device.type == "cuda"
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config["lr"], fused=True,
                                          capturable=graphed)
        self.generator = torch.Generator(device=device).manual_seed(self.config["seed"])
        self.forward = self.model
        if world > 1:
            self.forward = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        if self.config["compile"]:
            self.forward = torch.compile(self.forward)
        self.steps_per_epoch = len(self.train.labels) // self.config["batch_size"]
        if self.config["max_steps_per_epoch"]:
            self.steps_per_epoch = min(self.steps_per_epoch, int(self.config["max_steps_per_epoch"]))
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(self.train.labels)} training samples are fewer than one batch of "
                             f"train.batch_size={self.config['batch_size']}")
        self.step = 0
        self.static = self.static_step() if graphed else None

    def static_step(self) -> StaticStep:
        """The step as a CUDA graph (`StaticStep`), on this trainer's model, optimiser, EMA, data and generator."""
        return StaticStep(self.model, self.optimizer, self.ema, self.train_images, self.train_cond,
                          self.config["batch_size"], self.config["p_uncond"], self.config["loss_weighting"],
                          self.generator)

    # ------------------------------------------------------------------ checkpoints
    def state(self, epoch: int) -> dict:
        rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"model": self.model.state_dict(), "ema": self.ema.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "rng": rng, "epoch": epoch, "step": self.step,
                # not the run's length: a checkpoint is the same bytes whether the run later goes on or not
                "config": {key: value for key, value in self.config.items() if key not in _RESUMABLE}}

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the checkpoint's flag is its trainer's (a CUDA graph's) choice
            group["capturable"] = self.static is not None
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.step = int(state["step"])

    def logged_with(self) -> dict:
        """The settings of the dvclive history (`LOGGED_WITH`), and the validation data it was computed on."""
        return {"preview": asdict(self.preview), "val_samples": self.val_samples,
                "val_data": content_digest([self.val.images, self.val.cond])}

    def resume(self, restart: bool = False) -> int:
        """Load the newest checkpoint of this run (at most `epochs`) that no missing checkpoint epoch of its
        schedule precedes (a run resumed under another `checkpoint_every` must still write every one a fresh run
        writes), after removing those of any other configuration, code or model layout, or without a digest
        (written before checkpoints had one), or all of them with `restart`. Every other checkpoint is verified
        first: a damaged one is an error, neither trained over nor "already trained". Returns the epoch to continue
        after (0: fresh start)."""
        usable, stale = [], []
        for epoch, path in checkpoints(self.run_dir):
            state = load_checkpoint(path)
            if DIGEST in state:
                verify_checkpoint(path, state)
            ours = (not restart and DIGEST in state and epoch <= self.config["epochs"]
                    and _same_run(state["config"], self.config) and _fits(self.model, state["model"]))
            (usable if ours else stale).append((epoch, path))
        saved = {epoch for epoch, _ in usable}
        missing = [e for e in checkpoint_schedule(self.config["epochs"], self.config["checkpoint_every"])
                   if e not in saved]
        usable = [(epoch, path) for epoch, path in usable if not missing or epoch < missing[0]]
        if self.world > 1:
            dist.barrier()  # every rank has read them before rank 0 deletes any
        if stale and self.rank == 0:
            log.warning("%s: removing %d checkpoint(s) of another configuration, code or model layout, without a "
                        "digest, or beyond %d epochs: %s", self.variant.name, len(stale), self.config["epochs"],
                        ", ".join(p.name for _, p in stale))
            for _, path in stale:
                path.unlink()
        if not usable:
            return 0
        epoch, path = usable[-1]
        self.load(load_checkpoint(path))
        log.info("%s: resuming after %s", self.variant.name, path)
        return epoch

    # ------------------------------------------------------------------ one epoch
    def global_batch(self, order: torch.Tensor, i: int):
        """Indices, t, noise and condition-dropout mask of batch i, drawn identically on every rank."""
        b = self.config["batch_size"]
        idx = order[i * b:(i + 1) * b]
        t = torch.randint(0, self.model.schedule.timesteps, (b,), generator=self.generator, device=self.device)
        noise = torch.randn((b, *self.image_shape), generator=self.generator, device=self.device)
        drop = torch.rand((b,), generator=self.generator, device=self.device) < self.config["p_uncond"]
        share = slice(self.rank * b // self.world, (self.rank + 1) * b // self.world)
        return idx[share], t[share], noise[share], drop[share]

    def run_epoch(self, epoch: int) -> float:
        self.model.train()
        order = torch.randperm(len(self.train.labels), generator=self.generator, device=self.device)
        total = torch.zeros((), device=self.device)
        bar = tqdm(range(self.steps_per_epoch), desc=f"{self.variant.name} epoch {epoch}", leave=False,
                   disable=self.rank != 0)
        batch = self.config["batch_size"]
        for i in bar:
            if self.static is not None:  # one graph replay; the loss sum stays on the device
                self.step += 1
                self.static(order[i * batch:(i + 1) * batch], self.ema.weight(self.step))
                continue
            idx, t, noise, drop = self.global_batch(order, i)
            idx_data = idx.to(self.train_images.device)
            x0 = to_model_space(self.train_images[idx_data], self.device)
            cond = self.train_cond[idx_data].to(self.device, non_blocking=True)
            cond = torch.where(drop[:, None], torch.zeros_like(cond), cond)
            noise = noise.contiguous(memory_format=torch.channels_last)
            self.step += 1
            total += training_step(self.model, self.optimizer, self.ema, self.step, x0, cond, t, noise,
                                   self.config["loss_weighting"], forward=self.forward)
        if self.static is not None:
            total = self.static.take_total()
        if self.world > 1:
            dist.all_reduce(total)
            total /= self.world
        mean = float(total) / self.steps_per_epoch
        if not np.isfinite(mean):
            raise self.diverged(f"non-finite training loss in epoch {epoch}")
        return mean

    def check_weights(self, epoch: int) -> None:
        """FloatingPointError unless the weights and their EMA are finite: a step can diverge after the last loss
        of an epoch was summed, and a saved checkpoint of broken weights would stop every later run."""
        for what, module in (("weights", self.model), ("EMA weights", self.ema.model)):
            if not all(bool(torch.isfinite(weight).all()) for weight in module.state_dict().values()):
                raise self.diverged(f"non-finite {what} after epoch {epoch}")

    def diverged(self, what: str) -> FloatingPointError:
        last = checkpoints(self.run_dir)
        return FloatingPointError(f"{self.variant.name}: {what}; stopped, last good checkpoint: "
                                  f"{last[-1][1].name if last else 'none'}")

    @torch.no_grad()
    def validation_mse(self) -> float:
        """EMA noise-prediction MSE on a fixed val subset with fixed t and noise (comparable across epochs)."""
        n = min(self.val_samples, len(self.val.labels))
        generator = torch.Generator().manual_seed(self.config["seed"] + 1)
        rows = torch.randperm(len(self.val.labels), generator=generator)[:n]
        t = torch.randint(0, self.model.schedule.timesteps, (n,), generator=generator)
        noise = torch.randn((n, *self.image_shape), generator=generator)
        total = 0.0
        for start in range(0, n, 64):
            part = slice(start, start + 64)
            x0 = to_model_space(self.val.images[rows[part]], self.device)
            loss = diffusion_loss(self.ema.model, x0, self.val.cond[rows[part]].to(self.device),
                                  t[part].to(self.device), noise[part].to(self.device), self.ema.model.alphas_cumprod)
            total += float(loss) * len(rows[part])
        return total / n

    def preview_grid(self, ema: UNet | None = None):
        """One sample of the EMA model (by default the trainer's) per class for the first val items of each
        instrument (dvclive image)."""
        rows = np.array([np.flatnonzero(self.val.labels == c)[0] for c in np.unique(self.val.labels)])
        guidance = self.preview.guidance if self.config["p_uncond"] > 0 else 1.0
        images = generate_images(self.ema.model if ema is None else ema, self.val.cond[rows].numpy(),
                                 sampler=self.preview.sampler, steps=self.preview.steps, guidance=guidance,
                                 seed=self.config["seed"], batch_size=len(rows), device=self.device)
        return class_grid(images, self.val.labels[rows], per_class=1)

    def checkpoint_preview(self, path: Path):
        """`preview_grid` of the EMA weights of the checkpoint `path`, loaded into a copy of the trainer's EMA model
        (building a new U-Net would draw from the global RNG, which the training resumes from)."""
        ema = copy.deepcopy(self.ema.model)
        ema.load_state_dict(load_checkpoint(path)["ema"])
        return self.preview_grid(ema)


def _live(root: Path, variant: str, resume_epoch: int):
    """dvclive logger; on resume, history rows after the checkpoint (a killed run's tail) are dropped."""
    from dvclive import Live

    live = Live(dir=str(root / live_path("train", variant)), dvcyaml=False, save_dvc_exp=False,
                resume=resume_epoch > 0)
    for tsv in Path(live.plots_dir, "metrics").rglob("*.tsv") if resume_epoch else ():
        lines = tsv.read_text().splitlines()
        kept = [lines[0]] + [row for row in lines[1:] if int(row.split("\t")[0]) <= resume_epoch]
        tsv.write_text("\n".join(kept) + "\n")
    return live


def _preview_name(epoch: int) -> str:
    return f"preview/epoch_{epoch:03d}.png"


def _preview_file(live, epoch: int) -> Path:
    """Where dvclive keeps the preview `_preview_name(epoch)` it was given."""
    from dvclive.plots import Image

    return Path(live.plots_dir, Image.subfolder, _preview_name(epoch))


def _read_logged_with(live_dir: Path) -> dict | None:
    """The settings a run's dvclive history was logged with; None when not recorded (a fresh run, or one logged
    before they were: taken as logged with the current settings)."""
    path = live_dir / LOGGED_WITH
    return json.loads(path.read_text()) if path.is_file() else None


def _draw_previews(trainer: Trainer, live, epochs: list[int], redraw: bool) -> None:
    """The dvclive previews of the checkpoints at `epochs`: the missing ones (a run killed while it drew one after
    saving its checkpoint), or with `redraw` all of them (drawn with other `train.preview` settings)."""
    for epoch, path in checkpoints(trainer.run_dir):
        if epoch in epochs and (redraw or not _preview_file(live, epoch).is_file()):
            log.info("%s: drawing the preview of %s", trainer.variant.name, path.name)
            live.log_image(_preview_name(epoch), trainer.checkpoint_preview(path))


def _drop_off_schedule(run_dir: Path, live, schedule: list[int]) -> None:
    """Remove the checkpoints, and their dvclive previews, at epochs not in `schedule`: a run resumed under
    another `checkpoint_every` keeps its old ones until it is finished, and `sample` would sample them (and model
    selection choose among them) where a fresh run with these parameters has none."""
    for epoch, path in checkpoints(run_dir):
        if epoch not in schedule:
            log.info("%s: removing %s (not a checkpoint epoch of this run)", run_dir.name, path.name)
            path.unlink()
            _preview_file(live, epoch).unlink(missing_ok=True)


def train(variant: str, params: TrainConfig | dict, root: Path = Path(".")) -> Path:
    """Train (or resume) `models/diffusion/<variant>/`; returns the final checkpoint path."""
    v = Variant.parse(variant)
    params = TrainConfig.of(params)
    set_threads(params.threads)
    rank, world = _distributed()
    device = select_device()
    trainer = Trainer(v, params, root, rank, world, device)
    if rank == 0:
        remove_stale_temps(trainer.run_dir)
    live_dir, settings = root / live_path("train", v.name), trainer.logged_with()
    logged = _read_logged_with(live_dir) or settings
    # The history holds the validation MSE of every epoch, not only of the checkpointed ones: only retraining
    # redoes it under another train.val_samples.
    restart = logged["val_samples"] != settings["val_samples"] or logged.get("val_data") != settings["val_data"]
    if restart:
        log.info("%s: the validation MSE was logged on other validation data or another train.val_samples: "
                 "retraining", v.name)
    start = trainer.resume(restart)
    epochs, schedule = trainer.config["epochs"], params.checkpoint_epochs()
    live = _live(root, v.name, start) if rank == 0 else None
    if live is not None:  # the previews before the record: a run killed in between draws them again
        _draw_previews(trainer, live, [e for e in schedule if e <= start], logged["preview"] != settings["preview"])
        write_json(live_dir / LOGGED_WITH, settings)
    if start == epochs:
        log.info("%s: already trained for %d epochs", v.name, epochs)
    for epoch in range(start + 1, epochs + 1):
        train_loss = trainer.run_epoch(epoch)
        if rank == 0:
            val_mse = trainer.validation_mse()
            live.step = epoch
            live.log_metric("train/loss", train_loss)
            live.log_metric("val/mse", val_mse)
            log.info("%s epoch %d: train loss %.4f, val MSE %.4f", v.name, epoch, train_loss, val_mse)
            if epoch in schedule:
                trainer.check_weights(epoch)
                save_checkpoint(trainer.run_dir / checkpoint_name(epoch), trainer.state(epoch))
                live.log_image(_preview_name(epoch), trainer.preview_grid())
            live.next_step()
        if world > 1:
            dist.barrier()
    if live is not None:
        live.end()
        _drop_off_schedule(trainer.run_dir, live, schedule)
    if world > 1:
        dist.destroy_process_group()
    return trainer.run_dir / checkpoint_name(epochs)
