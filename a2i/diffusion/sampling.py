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
GRAPH_WARMUP = 3  # eager steps before a CUDA graph capture: cuDNN's autotuning, lazily created state
DEFAULT_GUIDANCE = 3.0  # the thesis' scale (sample.guidance)


def checkpoint_guidance(config: dict, guidance: float | None, source: str | Path) -> float:
    """The guidance scale to sample the checkpoint `source` (run config `config`) with: `guidance`, by default
    DEFAULT_GUIDANCE. A model trained without condition dropout (p_uncond 0, the -nocfg variants) never saw the null
    condition, so its unconditional prediction is untrained: it samples at 1 only (the default for it), as the
    pipeline does (`Trainer.preview_grid`, `main_guidance`), and another scale asked for is an error."""
    if config["p_uncond"] > 0:
        return DEFAULT_GUIDANCE if guidance is None else guidance
    if guidance not in (None, 1):
        raise ValueError(f"--guidance {guidance:g} needs a model trained with condition dropout; {source} was "
                         "trained with p_uncond 0: use --guidance 1")
    return 1.0


def guided_eps(model: Denoiser, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance: float) -> torch.Tensor:
    """eps_u + s (eps_c - eps_u) from one forward over [conditional; unconditional]; s = 1 skips the latter."""
    steps = t.expand(x.shape[0])
    if guidance == 1:
        return model(x, steps, cond).float()
    eps = model(torch.cat([x, x]), torch.cat([steps, steps]), torch.cat([cond, torch.zeros_like(cond)])).float()
    eps_c, eps_u = eps.chunk(2)
    return eps_u + guidance * (eps_c - eps_u)


def _timesteps_below(scheduler, steps: int, t_start: int, timesteps: int, device: torch.device) -> torch.Tensor:
    """The `steps` lowest timesteps of the coarsest schedule of `scheduler` (set_timesteps(n), n minimal) that has
    at least `steps` timesteps below `t_start`, so that the first of them lies as close below t_start as the
    sampler's spacing allows. Leaves `scheduler` set to that schedule, its begin index (where the scheduler has
    one: DPM-Solver++ counts its steps from it) at the first timestep kept."""
    def below(n: int) -> int:
        scheduler.set_timesteps(n, device=device)
        return int((scheduler.timesteps < t_start).sum())

    low, high = steps, timesteps  # below(T) = t_start >= steps: every integer timestep
    while low < high:  # bisection for the smallest n; below(n) grows with n
        middle = (low + high) // 2
        low, high = (low, middle) if below(middle) >= steps else (middle + 1, high)
    if below(low) < steps:
        raise ValueError(f"the {type(scheduler).__name__} has no schedule with {steps} timesteps below {t_start}")
    begin = len(scheduler.timesteps) - steps
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:]


@torch.no_grad()
def sample(model: Denoiser, cond: torch.Tensor, *, shape: tuple[int, ...], sampler: str, steps: int, guidance: float,
           generator: torch.Generator, schedule: Schedule = Schedule(), ddpm_variance: str = "fixed_small",
           progress: bool = False, x_init: torch.Tensor | None = None, t_start: int | None = None) -> torch.Tensor:
    """Draw one x0 per row of `cond` ([B, 1024]); `shape` is one sample's shape, e.g. (3, 64, 64).

    `sampler`: `ddpm` (ancestral; use steps = T; its posterior variance `ddpm_variance`), `ddim` (eta 0) or
    `dpmpp` (DPM-Solver++ 2M). All noise comes from `generator` (on cond's device). Returns x0 in model space,
    unclamped, float32.

    With `x_init` ([B, *shape], model space) and `t_start` (1..T) the chain starts from x_init instead of pure
    noise, as SDEdit (Meng et al. 2022, "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential
    Equations") and diffusers' img2img: x_init is noised to the first timestep kept, q(x_t0 | x_init), and only
    timesteps below t_start are visited, `steps` of them (the lowest of the coarsest schedule with that many
    below t_start). Without them (the default) nothing changes.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if (x_init is None) != (t_start is None):
        raise ValueError("x_init and t_start go together: pass both to start from x_init, or neither")
    scheduler = schedule.scheduler(sampler, ddpm_variance)
    if t_start is None:
        scheduler.set_timesteps(steps, device=cond.device)
        if scheduler.timesteps[0] < schedule.timesteps // 2:  # diffusers' "leading" spacing: ddim or ddpm at 1 step
            raise ValueError(f"{sampler} at {steps} step(s) starts at t = {int(scheduler.timesteps[0])}, and would "
                             f"take pure noise for a nearly clean image: use more steps, or dpmpp")
        x = torch.randn((cond.shape[0], *shape), generator=generator, device=cond.device) * scheduler.init_noise_sigma
        timesteps = scheduler.timesteps
    else:
        if not steps <= t_start <= schedule.timesteps:
            raise ValueError(f"t_start must be in [steps, {schedule.timesteps}] ({steps} steps below it), got "
                             f"{t_start}")
        if steps < 2:  # the lowest timestep of every schedule is 0: the one step would leave x_init as it is
            raise ValueError(f"a chain from t_start takes >= 2 steps (its last is at t = 0), got {steps}")
        if tuple(x_init.shape) != (cond.shape[0], *shape):
            raise ValueError(f"x_init must be [{cond.shape[0]}, {', '.join(map(str, shape))}], got "
                             f"{list(x_init.shape)}")
        timesteps = _timesteps_below(scheduler, steps, t_start, schedule.timesteps, cond.device)
        noise = torch.randn((cond.shape[0], *shape), generator=generator, device=cond.device)
        x = scheduler.add_noise(x_init.to(cond.device, torch.float32), noise, timesteps[:1])
    for t in tqdm(timesteps, desc=f"{sampler}-{steps}", disable=not progress, leave=False):
        eps = guided_eps(model, x, t.to(cond.device, torch.long).reshape(1), cond, guidance)
        x = scheduler.step(eps, t, x, generator=generator).prev_sample
    return x


def autocast(device: torch.device, cache: bool = True):
    """bf16 autocast on CUDA; nothing on CPU (fp32 keeps CPU runs bitwise reproducible). Inside a CUDA graph
    `cache` must be off: a weight cast cached before the capture is freed when the context ends, under the graph."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def on_side_stream(step: Callable[[], None]) -> None:
    """Run `step` eagerly on a side stream: CUDA graph capture needs the work it captures warmed up that way."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()
    torch.cuda.current_stream().wait_stream(stream)


def captured(step: Callable[[], None]) -> torch.cuda.CUDAGraph:
    """`step` captured as a CUDA graph (not run: replay it)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph


def ddpm_coefficients(schedule: Schedule, ddpm_variance: str, device: torch.device) -> dict[str, torch.Tensor]:
    """Per timestep t, the float32 factors of diffusers' DDPMScheduler.step over every timestep (prev_t = t - 1),
    computed as it computes them: x0 = (x - sqrt_one_minus_abar eps) / sqrt_abar, x_prev = c_x0 x0 + c_x x +
    sigma z (sigma 0 at t = 0, where it draws no noise)."""
    scheduler = schedule.scheduler("ddpm", ddpm_variance)
    scheduler.set_timesteps(schedule.timesteps)
    abar = scheduler.alphas_cumprod
    abar_prev = torch.cat([scheduler.one.reshape(1), abar[:-1]])
    beta_prod, beta_prod_prev = 1 - abar, 1 - abar_prev
    current_alpha = abar / abar_prev
    current_beta = 1 - current_alpha
    sigma = [torch.zeros(())] + [scheduler._get_variance(t) ** 0.5 for t in range(1, schedule.timesteps)]
    table = {"sqrt_one_minus_abar": beta_prod ** 0.5, "sqrt_abar": abar ** 0.5,
             "c_x0": abar_prev ** 0.5 * current_beta / beta_prod,
             "c_x": current_alpha ** 0.5 * beta_prod_prev / beta_prod,
             "sigma": torch.stack(sigma).float()}
    return {name: value.to(device) for name, value in table.items()}


@torch.no_grad()
def sample_ddpm_graphed(model: Denoiser, cond: torch.Tensor, *, shape: tuple[int, ...], guidance: float,
                        generator: torch.Generator, schedule: Schedule = Schedule(),
                        ddpm_variance: str = "fixed_small") -> torch.Tensor:
    """`sample(sampler="ddpm", steps=T)` as one fixed-shape step (both CFG halves in one batch of 2B) that on CUDA
    is a graph replayed once per timestep, under bf16 autocast: a few launches a step instead of the network's
    hundreds, and no host syncs (diffusers' step looks its timestep up on the host). Elsewhere it runs eagerly.
    The draws from `generator` are `sample`'s, in its order: the same samples, bitwise on the CPU."""
    device = cond.device
    table = ddpm_coefficients(schedule, ddpm_variance, device)
    x = torch.randn((cond.shape[0], *shape), generator=generator, device=device)  # init_noise_sigma is 1
    t = torch.zeros(1, dtype=torch.long, device=device)  # a 1-element index: a 0-d one would be read on the host
    noise = torch.zeros_like(x)

    def step() -> None:
        with autocast(device, cache=False):
            eps = guided_eps(model, x, t, cond, guidance)
        x0 = (x - table["sqrt_one_minus_abar"][t] * eps) / table["sqrt_abar"][t]
        x.copy_(table["c_x0"][t] * x0 + table["c_x"][t] * x + table["sigma"][t] * noise)

    graph, warm = None, 0
    for timestep in range(schedule.timesteps - 1, -1, -1):
        t.fill_(timestep)
        if timestep > 0:
            torch.randn(tuple(x.shape), generator=generator, out=noise)
        else:
            noise.zero_()
        if graph is not None:
            graph.replay()
        elif device.type != "cuda":
            step()
        elif warm < GRAPH_WARMUP:
            on_side_stream(step)
            warm += 1
        else:
            graph = captured(step)
            graph.replay()
    return x


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
    # DDPM over every timestep (the thesis' sampler) as a CUDA graph; the CPU keeps diffusers' step
    graphed = device.type == "cuda" and sampler == "ddpm" and steps == model.schedule.timesteps
    shape = (3, model.image_size, model.image_size)
    out = []
    for start in tqdm(range(0, len(cond), batch_size), desc=f"{sampler} g={guidance:g} seed={seed}", leave=False):
        batch = cond[start:start + batch_size].to(device)
        with autocast(device):
            if graphed:
                x = sample_ddpm_graphed(model, batch, shape=shape, guidance=guidance, generator=generator,
                                        schedule=model.schedule, ddpm_variance=ddpm_variance)
            else:
                x = sample(model, batch, shape=shape, sampler=sampler, steps=steps, guidance=guidance,
                           generator=generator, schedule=model.schedule, ddpm_variance=ddpm_variance)
        if not torch.isfinite(x).all():
            raise ValueError(f"{source}: non-finite samples ({run}): its weights are broken"
                             + (", or the guidance too large" if guidance > 1 else ""))
        out.append(to_uint8(x))
    images = np.concatenate(out)
    if images.min() == images.max():
        raise ValueError(f"{source}: all {len(images)} images are the single value {images.min()} ({run}): "
                         "its weights are broken")
    return images
