"""GPU throughput of the thesis profile, stage by stage (run by scripts/gpu_check.sh; one JSON line per figure).

- `finetune`: seconds per optimiser step of the thesis AudioCLIP (batch 10, text and mutual alignment, 1 s and
  5 s clips), through `a2i.audioclip.finetune.finetune` on a packed folder of random data;
- `embed`: embeddings/s of the fine-tuned audio head (`embed_audio`, 1 s and 5 s);
- `train`: training images/s of the thesis U-Net (bf16 autocast + channels_last; eager and torch.compile;
  batch 12 as the thesis and 128);
- `sample`: seconds to draw 5,000 images with DPM-Solver++ 25 steps + classifier-free guidance;
- `superres`: training images/s of the thesis-size super-resolution model (64 -> 256, batch 16, bf16) and
  upsampled images/s (DPM-Solver++ 25 steps), through `train_superres` and `upscale` on random data.

Last, the runtimes these rates give for the thesis grid: the train split sizes of Table 4.1 times the thesis'
epochs and batch sizes (5 x batch 10 fine-tuning, 100 x batch 12 diffusion), 10 checkpoints x the test split.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from a2i.audioclip import AudioCLIP
from a2i.audioclip.embed import embed_audio
from a2i.audioclip.finetune import finetune
from a2i.config import FinetuneConfig
from a2i.data.dataset import PreparedDataset
from a2i.data.layout import INSTRUMENTS, SAMPLE_RATE
from a2i.diffusion.sampling import autocast, sample
from a2i.diffusion.superres import train_superres, upscale
from a2i.diffusion.train import EMA, training_step
from a2i.diffusion.unet import UNet
from a2i.report.tables import published


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def unet_key(batch: int, compiled: bool) -> str:
    return f"train_b{batch}_{'compiled' if compiled else 'eager'}"


def timed(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def packed_folder(root: Path, samples: int) -> Path:
    """A prepared folder of random int16 audio and frames: `samples` train and test samples per length."""
    rng = np.random.default_rng(0)
    np.save(root / "tracks.npy", rng.integers(-12000, 12000, 120 * SAMPLE_RATE, dtype=np.int16))
    np.save(root / "images.npy", rng.integers(0, 256, (samples, 64, 64, 3), dtype=np.uint8))
    for length in (1, 5):
        for split in ("train", "test"):
            starts = rng.integers(0, (120 - length) * SAMPLE_RATE, samples)
            labels = np.arange(samples) % len(INSTRUMENTS)
            pd.DataFrame({"performance": "x", "instrument": [INSTRUMENTS[i] for i in labels], "label": labels,
                          "start": starts, "image": np.arange(samples)}).to_csv(
                root / f"index_{length}s_{split}.csv", index=False)
    return root


def finetune_seconds_per_step(root: Path, alignment: str, seconds: int, steps: tuple[int, int] = (4, 24)) -> float:
    """Two runs of `steps` optimiser steps each, after a warm-up run (cuDNN autotuning); their time difference per
    step (evaluation and setup cancel)."""
    train, test = PreparedDataset(root, seconds, "train"), PreparedDataset(root, seconds, "test")
    times = []
    for n in (steps[0],) + steps:
        config = FinetuneConfig(model_size="thesis", checkpoint=None, allow_random_init=True, epochs=1, batch_size=10,
                                lr=5e-5, lr_gamma=0.96, momentum=0.9, weight_decay=5e-4, same_class_negatives=False,
                                max_steps_per_epoch=n, bn_recalibration_batches=0, device="cuda", seed=0)
        torch.manual_seed(0)
        model = AudioCLIP("thesis").cuda()
        times.append(timed(lambda: finetune(model, alignment, train, test, config)))
    return (times[2] - times[1]) / (steps[1] - steps[0])


def embeddings_per_s(root: Path, seconds: int, batch: int) -> float:
    data = PreparedDataset(root, seconds, "test")
    encoder = AudioCLIP("thesis").audio.cuda().eval()
    embed_audio(encoder, data, batch)  # warm-up (cuDNN autotuning)
    return len(data) / timed(lambda: embed_audio(encoder, data, batch))


def unet_images_per_s(batch: int, compiled: bool, steps: int) -> float:
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = UNet("thesis").to(device).to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, fused=True)
    ema = EMA(model, 0.995)
    x0 = torch.randn(batch, 3, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    cond = torch.randn(batch, 1024, device=device)
    count = iter(range(1, 1 << 30))

    def step():  # the trainer's own step: bf16 autocast inside diffusion_loss, Adam, EMA
        t = torch.randint(0, 1000, (batch,), device=device)
        noise = torch.randn_like(x0)
        training_step(model, optimizer, ema, next(count), x0, cond, t, noise, forward=forward)

    for _ in range(5):  # warm-up (and compilation)
        step()
    return batch * steps / timed(lambda: [step() for _ in range(steps)])


def sampling_seconds(n: int, batch: int) -> float:
    device = torch.device("cuda")
    model = UNet("thesis").to(device).to(memory_format=torch.channels_last).eval()
    generator = torch.Generator(device=device).manual_seed(0)
    cond = torch.randn(n, 1024, device=device)

    def run():
        for first in range(0, n, batch):
            with autocast(device):
                sample(model, cond[first:first + batch], shape=(3, 64, 64), sampler="dpmpp", steps=25, guidance=3.0,
                       generator=generator)

    return timed(run)


def superres_rates(steps: int, images: int) -> tuple[float, float]:
    """(training images/s, upsampled images/s) of the thesis-size super-resolution model, 64 -> 256."""
    rng = np.random.default_rng(0)
    low = rng.integers(0, 256, (256, 64, 64, 3), dtype=np.uint8)
    high = rng.integers(0, 256, (256, 256, 256, 3), dtype=np.uint8)
    kwargs = dict(model_kwargs={"size": "thesis", "low_size": 64, "high_size": 256}, batch_size=16, lr=1e-4,
                  aug_max=250, ema_decay=0.9999, loss_weighting="eps", seed=0, device="cuda", progress=False)
    train_superres(low, high, None, steps=5, **kwargs)  # warm-up (cuDNN autotuning)
    model = None

    def run():
        nonlocal model
        model, _ = train_superres(low, high, None, steps=steps, **kwargs)

    train_rate = 16 * steps / timed(run)
    batch = low[:min(images, 64)]
    upscale(model, batch, None, sampler="dpmpp", steps=25, aug_level=100, seed=0, batch_size=64, device="cuda")
    repeats = np.concatenate([batch] * max(1, images // len(batch)))
    sample_rate = len(repeats) / timed(lambda: upscale(model, repeats, None, sampler="dpmpp", steps=25, aug_level=100,
                                                       seed=0, batch_size=64, device="cuda"))
    return train_rate, sample_rate


def split_sizes() -> pd.DataFrame:
    """Thesis Table 4.1: samples per split and length, summed over instruments."""
    table = published("table_4_1")
    return pd.DataFrame({length: {split: int(table[f"{length}s_{split}"].astype(int).sum()) for split in
                                  ("train", "test")} for length in range(1, 6)}).T


def projected_hours(rates: dict) -> None:
    """Per-run hours of each GPU stage for the thesis recipe, at the measured rates (1 s and 5 s bracket L)."""
    sizes = split_sizes()
    for length in (1, 5):
        train, test = sizes.loc[length, "train"], sizes.loc[length, "test"]
        finetune_steps = 5 * (train // 10)
        for alignment in ("text", "mutual"):
            emit(projection="finetune", length_s=length, alignment=alignment, steps=int(finetune_steps),
                 hours=round(finetune_steps * rates[f"finetune_{alignment}_{length}s"] / 3600, 2))
        emit(projection="embed", length_s=length, samples=int(train + 2 * test),
             minutes=round((train + 2 * test) / rates[f"embed_{length}s"] / 60, 1))
    images = 100 * sizes.loc[4, "train"]
    for batch, compiled in ((12, False), (12, True), (128, False), (128, True)):
        emit(projection="train", batch=batch, compiled=compiled, images=int(images),
             hours=round(images / rates[unet_key(batch, compiled)] / 3600, 2))
    images = 10 * sizes.loc[4, "test"]
    emit(projection="sample", checkpoints=10, images=int(images),
         minutes=round(images * rates["sample_s_per_image"] / 60, 1))


def measure_unet(rates: dict, compiled: bool, steps: int) -> None:
    for batch in (12, 128):
        rate = rates[unet_key(batch, compiled)] = unet_images_per_s(batch, compiled, steps)
        emit(stage="train", train_images_per_s=round(rate, 1), batch=batch, compiled=compiled, precision="bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--sample-batch", type=int, default=500)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    emit(device=torch.cuda.get_device_name(), torch=torch.__version__)
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = packed_folder(Path(folder), samples=260)
        for seconds in (1, 5):
            for alignment in ("text", "mutual"):
                rate = rates[f"finetune_{alignment}_{seconds}s"] = finetune_seconds_per_step(root, alignment, seconds)
                emit(stage="finetune", alignment=alignment, length_s=seconds, batch=10, precision="fp32",
                     seconds_per_step=round(rate, 4))
            rate = rates[f"embed_{seconds}s"] = embeddings_per_s(root, seconds, batch=32)
            emit(stage="embed", length_s=seconds, batch=32, embeddings_per_s=round(rate, 1))
    measure_unet(rates, compiled=False, steps=args.steps)
    seconds = sampling_seconds(args.images, args.sample_batch)
    rates["sample_s_per_image"] = seconds / args.images
    emit(stage="sample", sample_images=args.images, sampler="dpmpp-25+cfg", seconds=round(seconds, 1),
         batch=args.sample_batch)
    train_rate, sample_rate = superres_rates(args.steps, images=256)
    emit(stage="superres", low=64, high=256, batch=16, precision="bf16", train_images_per_s=round(train_rate, 1),
         upscaled_images_per_s=round(sample_rate, 1), sampler="dpmpp-25")
    measure_unet(rates, compiled=True, steps=args.steps)  # last: compilation takes the longest
    projected_hours(rates)


if __name__ == "__main__":
    main()
