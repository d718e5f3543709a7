"""CUDA checks of the diffusion code, run by scripts/gpu_check.sh (`-m cuda`); not part of the CPU suite."""

import numpy as np
import pytest
import torch

from a2i.diffusion.checkpoint import load_generator
from a2i.diffusion.sampling import generate_images
from a2i.diffusion.train import train
from a2i.diffusion.unet import UNet

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
def test_training_on_cuda_keeps_data_on_the_gpu_and_loads_on_cpu(root, compile_model):
    from tests.diffusion.helpers import train_params

    path = train("text-1s", train_params(epochs=1, compile=compile_model), root)
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
