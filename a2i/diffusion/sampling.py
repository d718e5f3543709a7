"""Sampling with classifier-free guidance: the step loop over a diffusers scheduler, and batches of images.

Guidance follows Capelle's code and the thesis: eps = eps_u + s (eps_c - eps_u), s = 1 is plain conditional
sampling. The unconditional branch is the same network given an all-zero embedding (the null condition used
in training), and both halves go through the network as ONE batched call.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from a2i.diffusion.images import to_uint8
from a2i.diffusion.schedule import Schedule
from a2i.diffusion.unet import UNet

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def guided_eps(model: Denoiser, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance: float) -> torch.Tensor:
    """eps_u + s (eps_c - eps_u) from one forward over [conditional; unconditional]; s = 1 skips the latter."""
    steps = t.expand(x.shape[0])
    if guidance == 1:
        return model(x, steps, cond).float()
    eps = model(torch.cat([x, x]), torch.cat([steps, steps]), torch.cat([cond, torch.zeros_like(cond)])).float()
    eps_c, eps_u = eps.chunk(2)
    return eps_u + guidance * (eps_c - eps_u)


@torch.no_grad()
def sample(model: Denoiser, cond: torch.Tensor, *, shape: tuple[int, ...], sampler: str, steps: int, guidance: float,
           generator: torch.Generator, schedule: Schedule = Schedule(), ddpm_variance: str = "fixed_small",
           progress: bool = False) -> torch.Tensor:
    """Draw one x0 per row of `cond` ([B, 1024]); `shape` is one sample's shape, e.g. (3, 64, 64).

    `sampler`: `ddpm` (ancestral; use steps = T; its posterior variance `ddpm_variance`), `ddim` (eta 0) or
    `dpmpp` (DPM-Solver++ 2M). All noise comes from `generator` (on cond's device). Returns x0 in model space,
    unclamped, float32.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    scheduler = schedule.scheduler(sampler, ddpm_variance)
    scheduler.set_timesteps(steps, device=cond.device)
    x = torch.randn((cond.shape[0], *shape), generator=generator, device=cond.device) * scheduler.init_noise_sigma
    for t in tqdm(scheduler.timesteps, desc=f"{sampler}-{steps}", disable=not progress, leave=False):
        eps = guided_eps(model, x, t.to(cond.device, torch.long).reshape(1), cond, guidance)
        x = scheduler.step(eps, t, x, generator=generator).prev_sample
    return x


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing on CPU (fp32 keeps CPU runs bitwise reproducible)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def generate_images(model: UNet, cond: np.ndarray | torch.Tensor, *, sampler: str, steps: int,
                    guidance: float, seed: int, batch_size: int, device: torch.device,
                    ddpm_variance: str = "fixed_small", source: str | Path = "the model") -> np.ndarray:
    """uint8 [n, S, S, 3] (S = model.image_size), one image per condition row, sampled with the noise schedule
    the model was trained with (`model.schedule`); the same seed gives the same images. Non-finite samples, or
    images that are all one value, are a ValueError naming `source` (the checkpoint): broken weights, whose black
    images would otherwise be scored."""
    cond = torch.as_tensor(np.asarray(cond, np.float32))
    generator = torch.Generator(device=device).manual_seed(seed)
    run = f"{sampler}, guidance {guidance:g}, seed {seed}"
    out = []
    for start in tqdm(range(0, len(cond), batch_size), desc=f"{sampler} g={guidance:g} seed={seed}", leave=False):
        batch = cond[start:start + batch_size].to(device)
        with autocast(device):
            x = sample(model, batch, shape=(3, model.image_size, model.image_size), sampler=sampler, steps=steps,
                       guidance=guidance, generator=generator, schedule=model.schedule,
                       ddpm_variance=ddpm_variance)
        if not torch.isfinite(x).all():
            raise ValueError(f"{source}: non-finite samples ({run}): its weights are broken")
        out.append(to_uint8(x))
    images = np.concatenate(out)
    if images.min() == images.max():
        raise ValueError(f"{source}: all {len(images)} images are the single value {images.min()} ({run}): "
                         "its weights are broken")
    return images
