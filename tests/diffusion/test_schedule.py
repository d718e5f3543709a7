import subprocess
import sys

import pytest
import torch

from a2i.diffusion.schedule import SAMPLERS, Schedule

PROBE = """
import sys, torch
from a2i.diffusion.schedule import SAMPLERS, Schedule
schedulers = [Schedule().scheduler(name) for name in SAMPLERS]
skipped = [name for name in ("torch._dynamo", "scipy") if name in sys.modules]
import torch._dynamo, scipy.stats  # loadable again after the schedulers
print(skipped, [type(s).__name__ for s in schedulers])
"""


def test_the_schedulers_load_without_dynamo_and_scipy():
    # The start-up of every sampling stage: a fresh interpreter, as a stage starts.
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] ['DDPMScheduler', 'DDIMScheduler', 'DPMSolverMultistepScheduler']"


def test_the_schedulers_load_after_a_users_own_import_of_diffusers():
    # diffusers, imported first, found scipy installed and counts on it: hiding it then breaks the import
    probe = "import diffusers\nfrom a2i.diffusion.schedule import SAMPLERS, Schedule\n" \
            "print([type(Schedule().scheduler(name)).__name__ for name in SAMPLERS])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['DDPMScheduler', 'DDIMScheduler', 'DPMSolverMultistepScheduler']"


def test_the_training_schedule_is_the_thesis_linear_one():
    abar = Schedule().alphas_cumprod()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float32)
    assert abar.shape == (1000,) and torch.allclose(abar, torch.cumprod(1 - betas, 0))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_steps_from_the_last_timestep(sampler):
    scheduler = Schedule().scheduler(sampler)
    scheduler.set_timesteps(10)
    assert len(scheduler.timesteps) == 10 and int(scheduler.timesteps[0]) >= 900


def test_an_unknown_sampler_is_named():
    with pytest.raises(ValueError, match="sampler must be one of"):
        Schedule().scheduler("euler")
