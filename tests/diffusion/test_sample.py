import numpy as np
import pytest
import torch

from a2i.diffusion.images import class_grid, image_grid, to_uint8
from a2i.diffusion.sample import main_guidance, sweep_epoch, sweep_scales
from a2i.diffusion.sampling import generate_images, guided_eps, sample, sample_ddpm_graphed
from a2i.diffusion.schedule import Schedule, add_noise
from a2i.diffusion.unet import UNet
from a2i.config import SampleConfig
from a2i.variants import Variant

from .helpers import sample_params

ALPHAS = Schedule().alphas_cumprod()
SIGMA = torch.tensor([0.5, 1.0, 0.3, 0.8])


def gaussian_eps(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, sigma: torch.Tensor = SIGMA) -> torch.Tensor:
    """The exact E[eps | x_t] for data x0 ~ N(mu, diag(sigma^2)) with mu = cond[:, :4] (zeros: mu = 0)."""
    abar = ALPHAS[t].view(-1, 1)
    mu = cond[:, :4]
    return (1 - abar).sqrt() * (x - abar.sqrt() * mu) / (abar * sigma**2 + 1 - abar)


@pytest.mark.parametrize("sampler, steps, n", [("ddpm", 1000, 1500), ("ddim", 100, 4000), ("dpmpp", 25, 4000)])
def test_samplers_reproduce_a_conditional_gaussian(sampler, steps, n):
    mu = torch.tensor([[1.0, -0.5, 0.0, 0.3], [-1.0, 0.5, 0.2, 0.0]])
    cond = torch.zeros(n, 1024)
    cond[:, :4] = mu.repeat_interleave(n // 2, dim=0)
    x = sample(gaussian_eps, cond, shape=(4,), sampler=sampler, steps=steps, guidance=1.0,
               generator=torch.Generator().manual_seed(0))
    for half, target in zip(x.chunk(2), mu):
        tolerance = 4 * SIGMA / (n // 2) ** 0.5 + 0.01
        assert ((half.mean(0) - target).abs() < tolerance).all(), (sampler, half.mean(0), target)
        assert ((half.std(0) / SIGMA - 1).abs() < 0.1).all(), (sampler, half.std(0))


@pytest.mark.parametrize("steps", [5, 10])
def test_ddim_at_few_steps_denoises_down_to_t_0(steps):
    # Each DDIM step must leave x at the noise level of the next timestep it is called with; where it does not, the
    # last step returns x still noised at a level above 0, which swamps the small-variance components. At few
    # steps DDIM's first-order step shrinks the spread of this Gaussian instead (its own discretisation error,
    # with every timestep spacing), so the spread is bounded from above only.
    sigma, n = torch.tensor([0.05, 0.1, 0.3, 1.0]), 2000
    mu = torch.tensor([1.0, -0.5, 0.0, 0.3])
    cond = torch.zeros(n, 1024)
    cond[:, :4] = mu
    x = sample(lambda x, t, c: gaussian_eps(x, t, c, sigma), cond, shape=(4,), sampler="ddim", steps=steps,
               guidance=1.0, generator=torch.Generator().manual_seed(0))
    assert ((x.mean(0) - mu).abs() < 4 * sigma / n ** 0.5 + 0.01).all(), x.mean(0)
    assert (x.std(0) < 1.1 * sigma).all(), x.std(0) / sigma


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_single_leading_step_is_refused_rather_than_returning_the_noise(sampler):
    # diffusers' "leading" spacing puts one step at t = 0: the chain would return its initial noise as the image
    with pytest.raises(ValueError, match=rf"^{sampler} at 1 step\(s\) starts at t = 0, and would take pure noise"):
        sample(gaussian_eps, torch.zeros(2, 1024), shape=(4,), sampler=sampler, steps=1, guidance=1.0,
               generator=torch.Generator().manual_seed(0))
    x = sample(gaussian_eps, torch.zeros(2000, 1024), shape=(4,), sampler="dpmpp", steps=1, guidance=1.0,
               generator=torch.Generator().manual_seed(0))
    assert (x.abs() < 0.05).all()  # one step from t = T - 1: the data mean, 0


def test_guidance_extrapolates_the_mean_away_from_the_unconditional_one():
    # With exact Gaussian branches (unconditional mean 0), eps_u + s (eps_c - eps_u) is exactly the noise
    # predictor of N(s * mu, SIGMA^2).
    cond = torch.zeros(2000, 1024)
    cond[:, 0] = 0.4
    x = sample(gaussian_eps, cond, shape=(4,), sampler="dpmpp", steps=25, guidance=3.0,
               generator=torch.Generator().manual_seed(0))
    assert float(x[:, 0].mean()) == pytest.approx(1.2, abs=0.05)
    assert float(x[:, 0].std()) == pytest.approx(0.5, rel=0.1)


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, x, t, cond):
        self.calls.append((x.shape[0], t.clone(), cond.clone()))
        # distinct outputs for the two halves: cond rows give 1 + x, the zero rows 2 * x
        is_cond = cond.abs().sum(1, keepdim=True).gt(0).view(-1, *([1] * (x.dim() - 1)))
        return torch.where(is_cond, 1 + x, 2 * x)


def test_cfg_is_one_batched_forward_combined_as_eps_u_plus_s_times_the_difference():
    model, x = Recorder(), torch.randn(3, 2)
    cond = torch.randn(3, 1024)
    eps = guided_eps(model, x, torch.tensor([7]), cond, guidance=3.0)
    assert len(model.calls) == 1
    batch, t, seen = model.calls[0]
    assert batch == 6 and t.tolist() == [7] * 6
    torch.testing.assert_close(seen[:3], cond)
    assert seen[3:].eq(0).all()
    eps_c, eps_u = 1 + x, 2 * x
    torch.testing.assert_close(eps, eps_u + 3.0 * (eps_c - eps_u))


def test_guidance_one_is_plain_conditional_with_a_single_half_batch():
    model, x, cond = Recorder(), torch.randn(3, 2), torch.randn(3, 1024)
    torch.testing.assert_close(guided_eps(model, x, torch.tensor([5]), cond, guidance=1.0), 1 + x)
    assert [c[0] for c in model.calls] == [3]


@pytest.mark.parametrize("sampler, steps, calls", [("dpmpp", 7, 7), ("ddim", 5, 5), ("ddpm", 1000, 1000)])
def test_each_sampler_step_is_one_network_call(sampler, steps, calls):
    model = Recorder()
    sample(model, torch.ones(2, 1024), shape=(3,), sampler=sampler, steps=steps, guidance=2.0,
           generator=torch.Generator().manual_seed(0))
    assert len(model.calls) == calls and all(c[0] == 4 for c in model.calls)


def test_sampling_is_seeded_and_returns_x0_unclamped():
    cond = torch.zeros(64, 1024)
    cond[:, 0] = 3.0  # far outside [-1, 1]
    run = lambda: sample(gaussian_eps, cond, shape=(4,), sampler="ddpm", steps=1000, guidance=1.0,  # noqa: E731
                         generator=torch.Generator().manual_seed(5))
    first = run()
    torch.testing.assert_close(first, run(), rtol=0, atol=0)
    assert float(first[:, 0].mean()) > 2.5


def test_bad_sampler_or_steps_is_a_clear_error():
    with pytest.raises(ValueError, match="sampler must be one of"):
        sample(gaussian_eps, torch.zeros(1, 1024), shape=(4,), sampler="euler", steps=5, guidance=1.0,
               generator=torch.Generator())
    with pytest.raises(ValueError, match="steps must be"):
        sample(gaussian_eps, torch.zeros(1, 1024), shape=(4,), sampler="ddim", steps=0, guidance=1.0,
               generator=torch.Generator())


def test_add_noise_is_the_forward_process():
    x0, noise, t = torch.ones(2, 3), torch.full((2, 3), 2.0), torch.tensor([0, 999])
    out = add_noise(x0, noise, t, ALPHAS)
    expected = ALPHAS[t].sqrt()[:, None] + 2 * (1 - ALPHAS[t]).sqrt()[:, None]
    torch.testing.assert_close(out, expected.expand(2, 3))
    assert ALPHAS[0] == pytest.approx(1 - 1e-4) and ALPHAS[-1] == pytest.approx(4.04e-5, rel=0.01)


def test_uint8_conversion_and_grids():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    images = to_uint8(x)
    assert images.shape == (1, 2, 2, 3) and images.dtype == np.uint8
    assert images[0, :, :, 0].tolist() == [[0, 0], [128, 255]]
    tiles = np.zeros((5, 4, 4, 3), np.uint8)
    assert image_grid(tiles, columns=2).size == (8, 12)
    assert class_grid(tiles, np.array([0, 0, 1, 2, 2]), per_class=3).size == (8, 12)  # 2 columns: no class has 3


def test_the_main_guidance_and_the_cfg_sweep_beside_it():
    config = SampleConfig.of(sample_params(guidance=3.0, cfg_scales=[1, 3, 5], cfg_epoch=None))
    assert main_guidance(Variant.parse("text-2s"), config) == 3.0
    assert main_guidance(Variant.parse("text-2s-pca"), config) == 3.0
    assert main_guidance(Variant.parse("text-2s-nocfg"), config) == 1.0  # never trained on the null condition
    assert sweep_scales(Variant.parse("text-2s"), config) == [1.0, 5.0]  # 3: sampled at every checkpoint already
    with pytest.raises(ValueError, match="not the study variant text-2s-pca"):
        sweep_scales(Variant.parse("text-2s-pca"), config)
    # the thesis sweeps epoch 70 of 100 (Tables 5.6-5.8 repeat Table 5.2's epoch-70 cell); null: the final one
    assert sweep_epoch([60, 70, 80], 70) == 70 and sweep_epoch([60, 70, 80], None) == 80
    with pytest.raises(ValueError, match=r"sample.cfg_epoch=50 is not a checkpoint epoch \(have \[60, 70, 80\]\)"):
        sweep_epoch([60, 70, 80], 50)


class Broken(torch.nn.Module):
    """A denoiser whose weights went bad: the same eps everywhere."""

    image_size = 8
    schedule = Schedule()

    def __init__(self, eps: float):
        super().__init__()
        self.eps = eps

    def forward(self, x, t, cond):
        return torch.full_like(x, self.eps)


@pytest.mark.parametrize("eps, why, hint", [(float("nan"), "non-finite samples", ", or the guidance too large"),
                                            (1e4, "all 4 images are the single value 0", "")])
def test_broken_samples_are_an_error_naming_their_source(eps, why, hint):
    with pytest.raises(ValueError, match=rf"^ckpt\.pt: {why} \(dpmpp, guidance 2, seed 0\): its weights are "
                                         rf"broken{hint}$"):
        generate_images(Broken(eps), np.zeros((4, 1024)), sampler="dpmpp", steps=2, guidance=2.0, seed=0,
                        batch_size=2, device=torch.device("cpu"), source="ckpt.pt")


@pytest.mark.parametrize("variance, guidance", [("fixed_small", 3.0), ("fixed_large", 3.0), ("fixed_small", 1.0)])
def test_the_fixed_shape_ddpm_loop_draws_the_samples_of_diffusers_ddpm(variance, guidance):
    # The CUDA-graph DDPM loop, run eagerly as on the CPU, against today's sampler over all 1000 steps: the same
    # draws and the same float32 arithmetic, so bitwise the same samples and generator state.
    cond = torch.zeros(6, 1024)
    cond[:3, :4] = torch.tensor([1.0, -0.5, 0.0, 0.3])
    generators = [torch.Generator().manual_seed(5) for _ in range(2)]
    kwargs = dict(shape=(4,), guidance=guidance, ddpm_variance=variance)
    ours = sample_ddpm_graphed(gaussian_eps, cond, generator=generators[0], **kwargs)
    theirs = sample(gaussian_eps, cond, sampler="ddpm", steps=1000, generator=generators[1], **kwargs)
    assert torch.equal(ours, theirs)
    assert torch.equal(generators[0].get_state(), generators[1].get_state())


def test_the_fixed_shape_ddpm_loop_runs_the_unet_as_diffusers_ddpm_does():
    torch.manual_seed(0)
    schedule = Schedule(timesteps=20)
    model = UNet("tiny", schedule=schedule.as_dict()).eval()
    cond = torch.randn(2, 1024)
    kwargs = dict(shape=(3, 64, 64), guidance=3.0, schedule=schedule)
    ours = sample_ddpm_graphed(model, cond, generator=torch.Generator().manual_seed(1), **kwargs)
    theirs = sample(model, cond, sampler="ddpm", steps=20, generator=torch.Generator().manual_seed(1), **kwargs)
    assert torch.equal(ours, theirs)
