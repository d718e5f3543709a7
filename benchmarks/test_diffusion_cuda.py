"""CUDA checks of the diffusion code, run by scripts/gpu_check.sh (`-m cuda`); not part of the CPU suite."""

import numpy as np
import pytest
import torch

from a2i.diffusion.checkpoint import load_generator
from a2i.diffusion.sampling import autocast, generate_images, sample, sample_ddpm_graphed
from a2i.diffusion.train import Trainer, train
from a2i.diffusion.unet import UNet
from a2i.variants import Variant

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (scripts/gpu_check.sh)")]


@pytest.fixture
def root(tmp_path):
    from tests.diffusion.helpers import make_root

    return make_root(tmp_path)


def test_bf16_channels_last_forward_backward_is_finite():
    model = UNet("thesis").cuda().to(memory_format=torch.channels_last)
    x = torch.randn(8, 3, 64, 64, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x, torch.randint(0, 1000, (8,), device="cuda"), torch.randn(8, 1024, device="cuda"))
    loss = out.float().pow(2).mean()
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("compile_model", [False, True])
def test_training_on_cuda_keeps_data_on_the_gpu_and_loads_on_cpu(root, compile_model, monkeypatch):
    import a2i.diffusion.train as training
    from tests.diffusion.helpers import train_params

    placed, on_device = [], training._on_device
    monkeypatch.setattr(training, "_on_device", lambda tensor, device: placed.append(on_device(tensor, device))
                        or placed[-1])
    path = train("text-1s", train_params(epochs=1, compile=compile_model), root)
    assert placed and all(tensor.is_cuda for tensor in placed)  # the training set went to the GPU
    model, config = load_generator(path, "cpu")
    assert config["compile"] is compile_model
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cuda_sampling_is_seeded():
    model = UNet("tiny").cuda().eval()
    cond = np.random.default_rng(0).normal(size=(6, 1024)).astype(np.float32)
    kwargs = dict(sampler="dpmpp", steps=5, guidance=3.0, batch_size=3,
                  device=torch.device("cuda"))
    first = generate_images(model, cond, seed=1, **kwargs)
    np.testing.assert_array_equal(first, generate_images(model, cond, seed=1, **kwargs))
    assert first.shape == (6, 64, 64, 3)


def test_the_graph_step_trains_like_the_eager_step_to_bf16_noise(root):
    # 100 epochs of 2 steps (200 steps, one graph replayed across epochs) against today's eager trainer on the same
    # draws: the epoch losses agree to bf16 noise, which training slowly amplifies.
    from tests.diffusion.helpers import train_params

    params = train_params(model_size="tiny", batch_size=12, max_steps_per_epoch=None)
    graph = Trainer(Variant.parse("text-1s"), params, root, 0, 1, torch.device("cuda"))
    graph_losses = torch.tensor([graph.run_epoch(epoch) for epoch in range(1, 101)])
    eager = Trainer(Variant.parse("text-1s"), params, root, 0, 1, torch.device("cuda"))
    assert graph.static is not None and graph.static.graph is not None and eager.static is not None
    eager.static = None  # today's step, with today's (not capturable) Adam
    for group in eager.optimizer.param_groups:
        group["capturable"] = False
    eager_losses = torch.tensor([eager.run_epoch(epoch) for epoch in range(1, 101)])
    torch.testing.assert_close(graph_losses[:5], eager_losses[:5], rtol=2e-2, atol=1e-3)
    assert abs(graph_losses.mean() / eager_losses.mean() - 1) < 0.03, (graph_losses, eager_losses)
    assert torch.equal(graph.generator.get_state(), eager.generator.get_state())  # the same draws


def test_graph_ddpm_samples_equal_eager_samples_to_bf16_noise():
    torch.manual_seed(0)
    model = UNet("tiny").cuda().to(memory_format=torch.channels_last).eval()
    cond = torch.randn(4, 1024, device="cuda")
    generators = [torch.Generator(device="cuda").manual_seed(3) for _ in range(2)]
    with autocast(torch.device("cuda")):  # as generate_images runs both
        ours = sample_ddpm_graphed(model, cond, shape=(3, 64, 64), guidance=3.0, generator=generators[0])
        theirs = sample(model, cond, shape=(3, 64, 64), sampler="ddpm", steps=1000, guidance=3.0,
                        generator=generators[1])
    assert torch.equal(generators[0].get_state(), generators[1].get_state())
    difference = (ours - theirs).abs()
    assert float(difference.mean()) < 0.02 and float(difference.max()) < 0.25, difference.max()
