"""The DDPM noise schedule (thesis: T = 1000, linear betas 1e-4..0.02, epsilon prediction) and its samplers.

Training and every sampler read the schedule from diffusers' schedulers configured identically, so the
alphas a model was trained with are exactly the ones it is sampled with.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # torch and diffusers load in the methods: the CLI reads SAMPLERS without them
    import torch

SAMPLERS = ("ddpm", "ddim", "dpmpp")
DDPM_VARIANCES = ("fixed_small", "fixed_large")  # posterior beta-tilde_t | beta_t (Ho et al. found both work)
LOSS_WEIGHTINGS = ("eps", "v")  # the training loss per timestep: a2i.diffusion.train.diffusion_loss
# What diffusers imports when present but these schedulers never use: torch._dynamo (a torch.compile hint for its
# models) and scipy (Beta-distributed sigmas). They were most of every sampling stage's start-up
# (benchmarks/RESULTS.md, "Stage start-up").
_UNUSED_BY_SCHEDULERS = ("torch._dynamo", "scipy")


@contextmanager
def _hidden(modules: tuple[str, ...]) -> Iterator[None]:
    """Imports of `modules` not yet loaded fail inside the block (a None in sys.modules), and work again after."""
    hidden = [name for name in modules if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))
    try:
        yield
    finally:
        for name in hidden:
            sys.modules.pop(name, None)


def _schedulers():
    """diffusers' DDIM, DDPM and DPM-Solver multistep schedulers, imported without the modules they do not use
    (diffusers treats both as optional); a diffusers that requires them, or that was imported already (it then
    counts on them, having found them installed), is imported with them."""
    unused = () if "diffusers" in sys.modules else _UNUSED_BY_SCHEDULERS
    try:
        with _hidden(unused):
            from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
    except ImportError:
        from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
    return DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler


@dataclass(frozen=True)
class Schedule:
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def as_dict(self) -> dict:
        return {"timesteps": self.timesteps, "beta_start": self.beta_start, "beta_end": self.beta_end}

    def check_steps(self, steps: int, source: object, name: str = "steps", setting: str = "") -> None:
        """ValueError unless a sampler can take `steps` (`name` in the message) steps on this schedule, the one of
        `source`: at most one per timestep (diffusers fails deep inside otherwise). `setting`: what sets it."""
        if steps > self.timesteps:
            raise ValueError(f"{name} must be <= the {self.timesteps} timesteps of the schedule of {source}{setting}, "
                             f"got {steps}")

    def _common(self) -> dict:
        return dict(num_train_timesteps=self.timesteps, beta_start=self.beta_start, beta_end=self.beta_end,
                    beta_schedule="linear", prediction_type="epsilon")

    def scheduler(self, sampler: str, ddpm_variance: str = "fixed_small"):
        """A fresh diffusers scheduler: `ddpm` ancestral (posterior variance `ddpm_variance`), `ddim` (eta 0),
        `dpmpp` (DPM-Solver++ 2M)."""
        DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler = _schedulers()
        if sampler == "ddpm":
            if ddpm_variance not in DDPM_VARIANCES:
                raise ValueError(f"ddpm_variance must be one of {DDPM_VARIANCES}, got '{ddpm_variance}'")
            return DDPMScheduler(**self._common(), variance_type=ddpm_variance, clip_sample=False)
        if sampler == "ddim":
            # "leading" (k * T // steps): DDIMScheduler.step steps from t to t - T // steps, which is then the next
            # timestep visited; with "linspace" it is not, and the last step leaves the noise of a t > 0 in x0.
            return DDIMScheduler(**self._common(), clip_sample=False, set_alpha_to_one=True,
                                 timestep_spacing="leading")
        if sampler == "dpmpp":
            # Steps uniform in log-SNR (the DPM-Solver papers' choice): with the default linear spacing the
            # last step jumps from t = T/steps to 0 and shrinks the fine, low-variance image components.
            return DPMSolverMultistepScheduler(**self._common(), algorithm_type="dpmsolver++", solver_order=2,
                                               use_lu_lambdas=True, thresholding=False, lower_order_final=True)
        raise ValueError(f"sampler must be one of {SAMPLERS}, got '{sampler}'")

    def alphas_cumprod(self, device: torch.device | str = "cpu") -> torch.Tensor:
        import torch

        return self.scheduler("ddpm").alphas_cumprod.to(device=device, dtype=torch.float32)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """q(x_t | x_0): sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
    abar = alphas_cumprod[t].view(-1, *([1] * (x0.dim() - 1)))
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise
