import numpy as np
import pytest
import torch
import torch.nn.functional as F

from a2i.diffusion.checkpoint import save_checkpoint
from a2i.diffusion.superres import (SuperResUNet, _conditioning, bicubic, load_superres, superres_state,
                                    train_superres, upscale)
from a2i.diffusion.train import diffusion_loss
from a2i.diffusion.unet import UNet

TINY = {"size": "tiny", "low_size": 8, "high_size": 16, "output_skip": True, "aug_max": 50}
COLOURS = np.array([[230, 40, 30], [40, 200, 60], [40, 60, 230], [200, 200, 40]], np.uint8)


def pairs(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Toy low/high pairs: a colour block on a dark background at 16x16, its 2x2 box average at 8x8."""
    rng = np.random.default_rng(0)
    high = np.full((n, 16, 16, 3), 20, np.uint8)
    for i in range(n):
        y, x = rng.integers(0, 8, 2)
        high[i, y:y + 8, x:x + 8] = COLOURS[i % len(COLOURS)]
    low = high.reshape(n, 8, 2, 8, 2, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    return low, high


def train(steps: int = 4, seed: int = 0, **model):
    low, high = pairs()
    cond = np.random.default_rng(1).normal(size=(len(low), 1024)).astype(np.float32) if model.get("audio") else None
    return train_superres(low, high, cond, model_kwargs={**TINY, **model}, steps=steps, batch_size=8, lr=1e-2,
                          ema_decay=0.9, loss_weighting="eps", seed=seed, device="cpu", progress=False, log_every=10)


def forward(model: SuperResUNet, aug: int = 0, cond: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    size = model.high_size
    x, low_up = torch.randn(2, 3, size, size, generator=g), torch.randn(2, 3, size, size, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([5, 700]), low_up, torch.tensor([aug, aug]), cond)


@pytest.mark.parametrize("low_size, high_size", [(8, 16), (4, 16)])
def test_the_network_predicts_noise_of_the_high_resolution_shape(low_size, high_size):
    model = SuperResUNet("tiny", low_size, high_size).eval()
    out = forward(model)
    assert out.shape == (2, 3, high_size, high_size) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert model.config == {"size": "tiny", "low_size": low_size, "high_size": high_size, "audio": False,
                            "dropout": 0.1, "schedule": model.schedule.as_dict(), "output_skip": False,
                            "t_start": None, "residual": False, "residual_scale": 1.0, "aug_max": 1}
    assert torch.equal(model.alphas_cumprod, model.schedule.alphas_cumprod())


def test_the_thesis_size_network_builds_at_64_to_256():
    model = SuperResUNet()
    assert (model.low_size, model.high_size, model.inc.net[0].in_channels) == (64, 256, 6)


@pytest.mark.parametrize("low_size, high_size, message", [
    (12, 16, "high_size must be a multiple of low_size"),
    (8, 8, "a power of two >= 2, got 1"),
    (4, 24, "a power of two >= 2, got 6"),
    (2, 4, "high_size must be a multiple of 8"),
])
def test_bad_sizes_are_one_line_errors(low_size, high_size, message):
    with pytest.raises(ValueError, match=message):
        SuperResUNet("tiny", low_size, high_size)


def test_the_bicubic_baseline_is_torch_bicubic_interpolation_rounded():
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    direct = F.interpolate(torch.from_numpy(images).permute(0, 3, 1, 2).double(), size=(32, 32), mode="bicubic",
                           align_corners=False)
    expected = direct.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    up = bicubic(images, 32)
    assert up.dtype == np.uint8 and up.shape == (3, 32, 32, 3)
    assert np.abs(up.astype(int) - expected).max() <= 1  # float32 vs float64 rounding at .5
    # the network's conditioning is the baseline image itself, in model space
    cond = _conditioning(torch.from_numpy(images), 32, torch.device("cpu"))
    assert torch.equal(cond, torch.from_numpy(up).permute(0, 3, 1, 2).float() / 127.5 - 1)
    with pytest.raises(ValueError, match="uint8"):
        bicubic(images.astype(np.float32), 32)


def test_without_audio_the_condition_is_ignored():
    torch.manual_seed(0)
    model = SuperResUNet(**TINY).eval()
    assert model.project is None and all(b.cross_attn is None for b in model.down_attn if b is not None)
    out = forward(model)
    assert torch.equal(out, forward(model, cond=torch.randn(2, 1024)))


def test_with_audio_the_condition_is_used_and_required():
    torch.manual_seed(0)
    model = SuperResUNet(**TINY, audio=True).eval()
    first, second = torch.randn(2, 1024), torch.randn(2, 1024)
    assert not torch.allclose(forward(model, cond=first), forward(model, cond=second))
    with pytest.raises(ValueError, match="pass cond"):
        forward(model)


def test_the_augmentation_level_conditions_the_network():
    torch.manual_seed(0)
    model = SuperResUNet(**TINY).eval()
    assert not torch.allclose(forward(model, aug=0), forward(model, aug=300))


def fixed_loss(model: SuperResUNet) -> float:
    """The diffusion loss on all toy pairs at fixed t, noise and augmentation level (comparable across models)."""
    low, high = pairs()
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 1000, (len(low),), generator=g)
    noise = torch.randn(len(low), 3, 16, 16, generator=g)
    low_up = _conditioning(torch.from_numpy(low), 16, torch.device("cpu"))
    x0 = torch.from_numpy(high).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        return float(diffusion_loss(lambda x, t, c: model(x, t, low_up, torch.zeros_like(t)), x0, None, t, noise,
                                    model.alphas_cumprod))


def test_training_is_deterministic_and_lowers_the_loss():
    model, stats = train(steps=20)
    again, _ = train(steps=20)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert not model.training and len(stats["loss"]) == 2 and model.aug_max == 50
    torch.manual_seed(0)  # the trainer's initialisation
    assert fixed_loss(model) < 0.8 * fixed_loss(SuperResUNet(**TINY).eval())
    other, _ = train(steps=1, seed=1)
    assert not torch.equal(train(steps=1)[0].outc.weight, other.outc.weight)


def test_training_checks_its_inputs():
    low, high = pairs()
    kwargs = dict(model_kwargs=TINY, steps=1, batch_size=4, lr=1e-3, ema_decay=0.9, loss_weighting="eps", seed=0,
                  device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"high must be uint8 \[n, 16, 16, 3\]"):
        train_superres(low, low, None, **kwargs)
    with pytest.raises(ValueError, match=r"aug_max must be in \[1, 1000\], got 0"):
        train_superres(low, high, None, **{**kwargs, "model_kwargs": {**TINY, "aug_max": 0}})
    with pytest.raises(ValueError, match="needs cond"):
        train_superres(low, high, None, **{**kwargs, "model_kwargs": {**TINY, "audio": True}})


def test_a_checkpoint_round_trip_gives_the_same_model(tmp_path):
    model, stats = train(audio=True)
    path = tmp_path / "superres.pt"
    save_checkpoint(path, superres_state(model, stats))
    loaded = load_superres(path)
    assert loaded.config == model.config and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    cond = torch.randn(2, 1024)
    assert torch.equal(forward(model, cond=cond), forward(loaded, cond=cond))


def test_a_damaged_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    model, stats = train()
    path = tmp_path / "superres.pt"
    save_checkpoint(path, superres_state(model, stats))
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{path}: (unreadable|its content does not match)"):
        load_superres(path)
    base = UNet("tiny", image_size=16)
    foreign = tmp_path / "base.pt"
    save_checkpoint(foreign, {"model": base.state_dict(), "ema": base.state_dict(), "config": {"model": base.config}})
    with pytest.raises(ValueError, match=f"{foreign}: not a super-resolution checkpoint"):
        load_superres(foreign)


def test_upscale_is_deterministic_uint8_of_the_high_size():
    model, _ = train()
    low = pairs(5)[0]
    kwargs = dict(sampler="dpmpp", steps=3, aug_level=10, batch_size=2, device="cpu")
    images = upscale(model, low, None, seed=0, **kwargs)
    assert images.dtype == np.uint8 and images.shape == (5, 16, 16, 3)
    assert np.array_equal(images, upscale(model, low, None, seed=0, **kwargs))
    assert not np.array_equal(images, upscale(model, low, None, seed=1, **kwargs))
    with pytest.raises(ValueError, match=r"low must be uint8 \[n, 8, 8, 3\]"):
        upscale(model, pairs(2)[1], None, seed=0, **kwargs)


def test_upscale_samples_only_the_augmentation_levels_the_model_was_trained_on():
    model, _ = train()
    upscale(model, pairs(2)[0], None, sampler="dpmpp", steps=2, aug_level=49, seed=0, batch_size=2, device="cpu")
    with pytest.raises(ValueError, match=r"^aug_level must be in \[0, 50\) \(the augmentation levels sr.pt was "
                                         r"trained on: train_sr.aug_max\), got 50$"):
        upscale(model, pairs(2)[0], None, sampler="dpmpp", steps=2, aug_level=50, seed=0, batch_size=2,
                device="cpu", source="sr.pt")


def test_upscale_with_audio_takes_one_condition_per_image():
    model, _ = train(audio=True)
    low = pairs(3)[0]
    kwargs = dict(sampler="ddim", steps=2, aug_level=0, seed=0, batch_size=3, device="cpu")
    cond = np.random.default_rng(0).normal(size=(3, 1024)).astype(np.float32)
    assert upscale(model, low, cond, **kwargs).shape == (3, 16, 16, 3)
    with pytest.raises(ValueError, match="one cond row per image"):
        upscale(model, low, None, **kwargs)


def test_non_finite_samples_name_the_source():
    model, _ = train()
    with torch.no_grad():
        model.outc.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="sr.pt: non-finite super-resolution samples"):
        upscale(model, pairs(2)[0], None, sampler="dpmpp", steps=2, aug_level=0, seed=0, batch_size=2, device="cpu",
                source="sr.pt")


# ------------------------------------------------------------------------------------------ truncated / residual

from a2i.diffusion.sampling import sample  # noqa: E402
from a2i.diffusion.schedule import Schedule  # noqa: E402

ALPHAS = Schedule().alphas_cumprod()


@pytest.mark.parametrize("sampler, steps, t_start", [("ddim", 4, 40), ("dpmpp", 5, 200), ("ddpm", 10, 10)])
def test_a_truncated_chain_visits_only_timesteps_below_t_start(sampler, steps, t_start):
    seen = []

    def model(x, t, cond):
        seen.append(int(t[0]))
        return torch.zeros_like(x)

    x_init = torch.randn(2, 3)
    sample(model, torch.zeros(2, 0), shape=(3,), sampler=sampler, steps=steps, guidance=1.0,
           generator=torch.Generator().manual_seed(0), x_init=x_init, t_start=t_start)
    assert len(seen) == steps and max(seen) < t_start and seen == sorted(seen, reverse=True) and seen[-1] == 0
    assert max(seen) >= t_start // 2  # it starts near t_start, not at the bottom of a fine schedule


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp"])
def test_a_truncated_chain_of_one_step_is_refused_rather_than_returning_its_start(sampler):
    # the lowest timestep of every schedule is 0: one step would noise x_init to t = 0 and denoise it from there
    with pytest.raises(ValueError, match=r"^a chain from t_start takes >= 2 steps \(its last is at t = 0\), got 1$"):
        sample(lambda x, t, c: torch.zeros_like(x), torch.zeros(2, 0), shape=(3,), sampler=sampler, steps=1,
               guidance=1.0, generator=torch.Generator().manual_seed(0), x_init=torch.randn(2, 3), t_start=150)


def test_sdedit_from_a_data_sample_keeps_the_data_distribution():
    # x0 ~ N(0, diag(SIGMA^2)) with the exact noise predictor: noising a data sample to t_start and denoising it
    # back is again a sample of the data distribution (the marginal at t_start is exact).
    sigma = torch.tensor([0.5, 1.0, 0.3, 0.8])

    def exact(x, t, cond):
        abar = ALPHAS[t].view(-1, 1)
        return (1 - abar).sqrt() * x / (abar * sigma**2 + 1 - abar)

    x_init = torch.randn(4000, 4, generator=torch.Generator().manual_seed(1)) * sigma
    for sampler, steps in (("ddim", 30), ("dpmpp", 8)):  # few DDIM steps shrink the std, as from pure noise
        x = sample(exact, torch.zeros(4000, 0), shape=(4,), sampler=sampler, steps=steps, guidance=1.0,
                   generator=torch.Generator().manual_seed(0), x_init=x_init, t_start=300)
        assert ((x.std(0) / sigma - 1).abs() < 0.08).all(), (sampler, x.std(0))
        assert (x.mean(0).abs() < 0.1).all()
        assert not torch.allclose(x, x_init, atol=0.01)  # it was noised and denoised, not passed through


def test_sample_start_arguments_are_checked():
    kwargs = dict(shape=(3,), sampler="ddim", steps=4, guidance=1.0, generator=torch.Generator())
    model = lambda x, t, c: torch.zeros_like(x)  # noqa: E731
    with pytest.raises(ValueError, match="go together"):
        sample(model, torch.zeros(2, 0), x_init=torch.zeros(2, 3), **kwargs)
    with pytest.raises(ValueError, match="t_start must be in"):
        sample(model, torch.zeros(2, 0), x_init=torch.zeros(2, 3), t_start=3, **kwargs)
    with pytest.raises(ValueError, match="x_init must be"):
        sample(model, torch.zeros(2, 0), x_init=torch.zeros(2, 4), t_start=40, **kwargs)


def test_truncated_training_draws_only_timesteps_below_t_start(monkeypatch):
    import a2i.diffusion.superres as superres

    seen = []
    step = superres.training_step

    def recording(model, optimizer, ema, n, x0, cond, t, *args, **kwargs):
        seen.append(t.clone())
        return step(model, optimizer, ema, n, x0, cond, t, *args, **kwargs)

    monkeypatch.setattr(superres, "training_step", recording)
    model, _ = train(steps=6, t_start=30, residual=True, residual_scale=0.1)
    assert model.config["t_start"] == 30 and model.config["residual"] and model.config["residual_scale"] == 0.1
    assert int(torch.cat(seen).max()) < 30


def test_the_residual_target_is_the_scaled_difference_to_bicubic():
    model = SuperResUNet(**TINY, residual=True, residual_scale=0.25)
    high, low_up = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    assert torch.allclose(model.target(high, low_up), (high - low_up) / 0.25)
    assert torch.allclose(model.image(model.target(high, low_up), low_up), high)
    plain = SuperResUNet(**TINY)
    assert model.target(high, low_up) is not high and plain.target(high, low_up) is high


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp"])
def test_a_zero_residual_model_returns_the_bicubic_image(sampler):
    # A model whose noise prediction implies x0 = 0 (a zero residual): eps = x_t / sqrt(1 - abar_t).
    model = SuperResUNet(**TINY, t_start=100, residual=True, residual_scale=0.1).eval()
    seen = []

    def zero_residual(x, t, low_up, aug_t, cond=None):
        seen.append(int(t[0]))
        return x / (1 - model.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)

    model.forward = zero_residual
    low = pairs(5)[0]
    images = upscale(model, low, None, sampler=sampler, steps=4, aug_level=10, seed=0, batch_size=5, device="cpu")
    assert np.abs(images.astype(int) - bicubic(low, 16)).max() <= (0 if sampler == "ddim" else 1)
    assert len(seen) == 4 and max(seen) < 100
    seen.clear()
    upscale(model, low, None, sampler=sampler, steps=3, aug_level=10, seed=0, batch_size=5, device="cpu", t_start=20)
    assert len(seen) == 3 and max(seen) < 20
    with pytest.raises(ValueError, match=r"t_start must be in \[3, 100\]"):
        upscale(model, low, None, sampler=sampler, steps=3, aug_level=0, seed=0, batch_size=5, device="cpu",
                t_start=200)


def test_a_truncated_model_starts_from_the_bicubic_image_and_round_trips(tmp_path):
    model, stats = train(steps=30, t_start=100, residual=True, residual_scale=0.2)
    low, high = pairs()
    path = tmp_path / "superres.pt"
    save_checkpoint(path, superres_state(model, stats))
    loaded = load_superres(path)
    assert loaded.config == model.config and loaded.t_start == 100 and loaded.residual
    kwargs = dict(sampler="ddim", steps=4, aug_level=0, seed=0, batch_size=16, device="cpu")
    images = upscale(loaded, low, None, **kwargs)
    assert np.array_equal(images, upscale(model, low, None, **kwargs))
    # it starts from the bicubic image and stays close to it: no pixel noise of a chain started from pure noise
    assert np.abs(images.astype(float) - bicubic(low, 16)).mean() < 8


def test_more_steps_than_a_truncated_model_takes_are_an_error_naming_its_t_start():
    model = SuperResUNet(**TINY, t_start=5).eval()
    for steps in (6, 1):  # one step would be the one at t = 0: the chain would return its start
        with pytest.raises(ValueError, match=rf"^steps must be in \[2, 5\] for sr\.pt, truncated at t_start 5 "
                                             rf"\(train_sr\.t_start: .*\), got {steps}$"):
            upscale(model, pairs(1)[0], None, sampler="dpmpp", steps=steps, aug_level=0, seed=0, batch_size=1,
                    device="cpu", source="sr.pt")


def test_bad_start_and_residual_options_are_errors():
    with pytest.raises(ValueError, match="t_start must be in"):
        SuperResUNet(**TINY, t_start=0)
    with pytest.raises(ValueError, match="residual_scale must be > 0"):
        SuperResUNet(**TINY, residual=True, residual_scale=0)
