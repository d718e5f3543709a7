"""GPU throughput of the thesis U-Net (run by scripts/gpu_check.sh; prints one JSON line per figure).

- training images/s: bf16 autocast + channels_last, eager and torch.compile'd, at batch 12 (thesis) and 128;
- seconds to draw 5,000 images with dpmpp-25 + CFG (one batched guided call per step).
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

from a2i.diffusion.sample import autocast, sample
from a2i.diffusion.schedule import Schedule, add_noise
from a2i.diffusion.unet import UNet


def train_images_per_s(batch: int, compiled: bool, steps: int) -> float:
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = UNet("thesis").to(device).to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, fused=True)
    abar = Schedule().alphas_cumprod(device)
    x0 = torch.randn(batch, 3, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    cond = torch.randn(batch, 1024, device=device)

    def step():
        t = torch.randint(0, 1000, (batch,), device=device)
        noise = torch.randn_like(x0)
        with autocast(device):
            eps = forward(add_noise(x0, noise, t, abar), t, cond)
        loss = F.mse_loss(eps.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):  # warm-up (and compilation)
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def sampling_seconds(n: int, batch: int) -> float:
    device = torch.device("cuda")
    model = UNet("thesis").to(device).to(memory_format=torch.channels_last).eval()
    generator = torch.Generator(device=device).manual_seed(0)
    cond = torch.randn(n, 1024, device=device)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for first in range(0, n, batch):
        with autocast(device):
            sample(model, cond[first:first + batch], shape=(3, 64, 64), sampler="dpmpp", steps=25, guidance=3.0,
                   generator=generator)
    torch.cuda.synchronize()
    return time.perf_counter() - start


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--sample-batch", type=int, default=500)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    print(json.dumps({"device": torch.cuda.get_device_name()}), flush=True)
    for batch in (12, 128):
        for compiled in (False, True):
            rate = train_images_per_s(batch, compiled, args.steps)
            print(json.dumps({"train_images_per_s": round(rate, 1), "batch": batch, "compiled": compiled,
                              "precision": "bf16"}), flush=True)
    seconds = sampling_seconds(args.images, args.sample_batch)
    print(json.dumps({"sample_images": args.images, "sampler": "dpmpp-25+cfg", "seconds": round(seconds, 1),
                      "batch": args.sample_batch}), flush=True)
