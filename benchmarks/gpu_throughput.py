"""GPU throughput of the thesis recipe (run by scripts/gpu_check.sh; one JSON line per figure).

`--parts recipe` (the default; under 8 minutes on one H100, every measurement time-boxed): the exact thesis recipe
made fast (issue 15), each figure beside today's eager path in the same run:
- training images/s at batch 12: today's eager bf16 step vs the CUDA-graph step (`a2i.diffusion.train.StaticStep`);
- aggregate training images/s of 1, 2, 4 and 8 co-located graph-step processes on one GPU (A2I_GPU_SLOTS=8);
- DDPM-1000 + CFG sampling images/s: today's eager `sample` vs `sample_ddpm_graphed`, each at its best batch of
  a short sweep (seconds per step from two chains of different lengths, so set-up and capture cancel; x 1000);
- evaluation images/s (the instrument classifier and Inception, as the evaluate stage runs them);
- the thesis grid's projected hours on this GPU (`a2i.grid_runtime`), the hardware limit (the U-Net's FLOPs, counted
  by torch.utils.flop_counter, over the GPU's bf16 peak) and each path's model FLOPs utilisation.

`--parts stages`: the figures of each stage of the thesis profile (measured 2026-11-27, benchmarks/RESULTS.md):
- `finetune`: seconds per optimiser step of the thesis AudioCLIP (batch 10, text and mutual alignment, 1 s and
  5 s clips), through `a2i.audioclip.finetune.finetune` on a packed folder of random data;
- `embed`: embeddings/s of the fine-tuned audio head (`embed_audio`, 1 s and 5 s);
- `train`: training images/s of the thesis U-Net (bf16 autocast + channels_last; eager and torch.compile;
  batch 12 as the thesis and 128);
- `sample`: seconds to draw 5,000 images with DPM-Solver++ 25 steps + classifier-free guidance;
- `superres`: training images/s of the thesis-size super-resolution model (64 -> 256, batch 16, bf16) and
  upsampled images/s (DPM-Solver++ 25 steps), through `train_superres` and `upscale` on random data.

and the runtimes these rates give for the thesis grid: the train split sizes of Table 4.1 times the thesis'
epochs and batch sizes (5 x batch 10 fine-tuning, 100 x batch 12 diffusion), 10 checkpoints x the test split.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from torch.utils.flop_counter import FlopCounterMode

from a2i import grid_runtime
from a2i.audioclip import AudioCLIP
from a2i.audioclip.embed import embed_audio
from a2i.audioclip.finetune import finetune
from a2i.config import FinetuneConfig
from a2i.data.dataset import PreparedDataset
from a2i.data.layout import INSTRUMENTS, SAMPLE_RATE
from a2i.devices import SLOTS_ENV, select_device
from a2i.diffusion.sampling import autocast, sample, sample_ddpm_graphed
from a2i.diffusion.schedule import Schedule
from a2i.diffusion.superres import train_superres, upscale
from a2i.diffusion.train import EMA, StaticStep, to_model_space, training_step
from a2i.diffusion.unet import UNet
from a2i.evaluation.classifier import ClassifierFeatures, InstrumentClassifier
from a2i.evaluation.fid import InceptionFeatures
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
    kwargs = dict(model_kwargs={"size": "thesis", "low_size": 64, "high_size": 256, "aug_max": 250}, batch_size=16,
                  lr=1e-4, ema_decay=0.9999, loss_weighting="eps", seed=0, device="cuda", progress=False)
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


# ------------------------------------------------------------------ the exact thesis recipe, fast (issue 15)

BATCH = 12  # the thesis' training batch
SIZE = "thesis"  # the U-Net measured
DATA = 1024  # random prepared images held on the GPU, as the trainer holds the real ones
SAMPLE_BATCHES = (64, 128, 256, 512)  # the sampling sweep (64: the thesis profile's sample.batch_size)
CO_LOCATED = (1, 2, 4, 8)
DEVICE = torch.device("cuda")  # of every recipe figure but the co-located ones (each claims a slot)


def thesis_unet(device: torch.device) -> UNet:
    torch.manual_seed(0)
    return UNet(SIZE).to(device, memory_format=torch.channels_last)


def time_boxed(step, seconds: float, chunk: int = 25) -> float:
    """Calls per second of `step`, called in chunks of `chunk` (one sync each) until `seconds` have passed."""
    torch.cuda.synchronize()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for _ in range(chunk):
            step()
        calls += chunk
        torch.cuda.synchronize()
    return calls / (time.perf_counter() - start)


def training_data(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    generator = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (DATA, 64, 64, 3), dtype=torch.uint8, device=device, generator=generator)
    return images, torch.randn(DATA, 1024, device=device, generator=generator), generator


def eager_train_step(device: torch.device):
    """Today's trainer step on CUDA (`Trainer.run_epoch` with the data on the GPU): draws, gather, fused Adam."""
    model, (images, cond, generator) = thesis_unet(device), training_data(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, fused=True)
    ema, count = EMA(model, 0.995), iter(range(1, 1 << 30))

    def step():
        idx = torch.randint(0, DATA, (BATCH,), device=device, generator=generator)
        t = torch.randint(0, 1000, (BATCH,), generator=generator, device=device)
        noise = torch.randn((BATCH, 3, 64, 64), generator=generator, device=device)
        drop = torch.rand((BATCH,), generator=generator, device=device) < 0.1
        batch_cond = cond[idx]
        batch_cond = torch.where(drop[:, None], torch.zeros_like(batch_cond), batch_cond)
        training_step(model, optimizer, ema, next(count), to_model_space(images[idx], device), batch_cond, t,
                      noise.contiguous(memory_format=torch.channels_last))

    return step


def graph_train_step(device: torch.device):
    """The trainer's CUDA step now: `StaticStep`, one graph replay per step after three warm-up steps."""
    model, (images, cond, generator) = thesis_unet(device), training_data(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, fused=True, capturable=True)
    ema, count = EMA(model, 0.995), iter(range(1, 1 << 30))
    static = StaticStep(model, optimizer, ema, images, cond, BATCH, 0.1, "eps", generator)

    def step():
        n = next(count)
        static(torch.randint(0, DATA, (BATCH,), device=device, generator=generator), ema.weight(n))

    return step


def training_images_per_s(make_step, seconds: float) -> float:
    step = make_step(DEVICE)
    for _ in range(10):  # warm-up: cuDNN autotuning, Adam's state, the graph capture
        step()
    return BATCH * time_boxed(step, seconds)


def train_worker(seconds: float, folder: Path) -> None:
    """One co-located process: claims a slot, warms up, waits for the others, then reports its images/s."""
    step = graph_train_step(select_device("cuda"))
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    (folder / f"ready.{os.getpid()}").touch()
    while not (folder / "go").exists():
        time.sleep(0.01)
    emit(worker_images_per_s=BATCH * time_boxed(step, seconds))


def co_located_images_per_s(processes: int, seconds: float) -> float:
    """Aggregate images/s of `processes` graph-step trainers sharing this GPU, each in its own slot."""
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, SLOTS_ENV: str(max(CO_LOCATED)), "A2I_GPU_LOCK_DIR": f"{folder}/locks",
               "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]}
        workers = [subprocess.Popen([sys.executable, __file__, "--train-worker", str(seconds), folder], env=env,
                                    stdout=subprocess.PIPE, text=True) for _ in range(processes)]
        deadline = time.monotonic() + 180
        while len(list(Path(folder).glob("ready.*"))) < processes:
            if time.monotonic() > deadline or any(worker.poll() is not None for worker in workers):
                for worker in workers:
                    worker.kill()
                raise RuntimeError(f"{processes} co-located workers did not all start")
            time.sleep(0.1)
        (Path(folder) / "go").touch()
        outputs = [worker.communicate(timeout=seconds + 120)[0] for worker in workers]
    if any(worker.returncode for worker in workers):
        raise RuntimeError(f"a co-located worker failed: {[worker.returncode for worker in workers]}")
    return sum(json.loads(out.strip().splitlines()[-1])["worker_images_per_s"] for out in outputs)


def ddpm_images_per_s(batch: int, graphed: bool, chains: tuple[int, int] = (5, 15)) -> float:
    """DDPM-1000 + CFG (guidance 3) images/s at `batch`: seconds per step from two chains of `chains` steps (every
    DDPM step costs the same; set-up and the capture cancel in the difference), x 1000 steps."""
    device = DEVICE
    model = thesis_unet(device).eval()
    cond = torch.randn(batch, 1024, device=device)
    generator = torch.Generator(device=device).manual_seed(0)

    def chain(steps: int) -> None:
        schedule = Schedule(timesteps=steps)
        with autocast(device):  # as generate_images runs both
            if graphed:
                sample_ddpm_graphed(model, cond, shape=(3, 64, 64), guidance=3.0, generator=generator,
                                    schedule=schedule)
            else:
                sample(model, cond, shape=(3, 64, 64), sampler="ddpm", steps=steps, guidance=3.0,
                       generator=generator, schedule=schedule)

    chain(chains[0])  # warm-up: cuDNN autotuning
    short, long = (timed(lambda n=n: chain(n)) for n in chains)
    return batch / ((long - short) / (chains[1] - chains[0]) * 1000)


def best_ddpm_rate(graphed: bool) -> tuple[int, float]:
    """(batch, images/s) of the sweep's best batch; it stops once a larger batch gains under 5%."""
    best = (0, 0.0)
    for batch in SAMPLE_BATCHES:
        rate = ddpm_images_per_s(batch, graphed)
        emit(stage="sample", sampler="ddpm-1000+cfg", path="graph" if graphed else "eager", batch=batch,
             images_per_s=round(rate, 2))
        if rate < 1.05 * best[1]:
            break
        best = (batch, rate)
    return best


def evaluation_images_per_s(images: int = 2000, batch: int = 200) -> float:
    """Images/s through the instrument classifier and Inception (random weights: the cost is the same)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests: the weights helper
    from tests.evaluation.helpers import random_inception_weights

    data = np.random.default_rng(0).integers(0, 256, (images, 64, 64, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        inception = InceptionFeatures(random_inception_weights(Path(folder) / "inception.pth"), batch, str(DEVICE))
    classifier = ClassifierFeatures(InstrumentClassifier().to(DEVICE).eval(), batch, str(DEVICE))

    def evaluate():
        classifier(data)
        inception(data)

    evaluate()  # warm-up: cuDNN autotuning
    return images / timed(evaluate)


def unet_flops_per_image() -> dict[str, float]:
    """FLOPs per image of the U-Net: a training step (forward and backward) and a DDPM-1000 chain with CFG."""
    device = DEVICE
    model = thesis_unet(device)
    x = torch.randn(BATCH, 3, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    t, cond = torch.randint(0, 1000, (BATCH,), device=device), torch.randn(BATCH, 1024, device=device)
    with FlopCounterMode(display=False) as training:
        with autocast(device):
            out = model(x, t, cond)
        out.float().pow(2).mean().backward()
    with FlopCounterMode(display=False) as forward, torch.no_grad(), autocast(device):
        model(x, t, cond)
    return {"train": training.get_total_flops() / BATCH, "sample": 2 * 1000 * forward.get_total_flops() / BATCH}


def thesis_split_sizes() -> dict[int, dict[str, int]]:
    return {int(length): {split: int(n) for split, n in row.items()} for length, row in split_sizes().iterrows()}


def project(rates: dict[str, dict[str, float]], flops: dict[str, float]) -> None:
    """The thesis grid's hours on this GPU at each path's rates, the hardware limit, and each path's MFU."""
    work = grid_runtime.thesis_grid(thesis_split_sizes())
    emit(grid_models=work.models, train_images=work.train_images, sampled_images=work.sampled_images,
         unguided_images=work.unguided_images)
    for path, path_rates in rates.items():
        hours = grid_runtime.projected_hours(work, path_rates)
        emit(projection="thesis_grid_one_gpu", path=path, **{f"{part}_h": round(h, 1) for part, h in hours.items()})
    peak = grid_runtime.peak_bf16_tflops(torch.cuda.get_device_name())
    if peak is None:
        emit(hardware_limit=None, why=f"no bf16 peak for {torch.cuda.get_device_name()} in a2i.grid_runtime")
        return
    limit = grid_runtime.hardware_limit_hours(work, flops, peak)
    emit(hardware_limit="U-Net FLOPs at the bf16 peak", peak_tflops=peak,
         **{f"{part}_h": round(h, 2) for part, h in limit.items()})
    for path, path_rates in rates.items():
        emit(mfu=path, **{part: round(grid_runtime.utilisation(path_rates[part], flops[part], peak), 4)
                          for part in flops})


def attempt(name: str, measure, failures: list[str]):
    """`measure()`, or None with the error printed: one failed figure must not cost the others their GPU time."""
    try:
        return measure()
    except Exception as error:  # any failure of a measurement is reported, then the next one runs
        traceback.print_exc()
        emit(failed=name, error=f"{type(error).__name__}: {error}".splitlines()[0])
        failures.append(name)
        return None


def measure_recipe(seconds: float) -> list[str]:
    """Every figure of the recipe part; returns the names of those that failed."""
    failures: list[str] = []
    flops = attempt("flops", unet_flops_per_image, failures)
    if flops:
        emit(flops_per_image={part: f"{value:.4g}" for part, value in flops.items()})
    train = {path: attempt(f"train_{path}", lambda make=make: training_images_per_s(make, seconds), failures)
             for path, make in (("eager", eager_train_step), ("graph", graph_train_step))}
    emit(stage="train", batch=BATCH, precision="bf16",
         **{f"{p}_images_per_s": r and round(r, 1) for p, r in train.items()},
         ratio=None if None in train.values() else round(train["graph"] / train["eager"], 2))
    for processes in CO_LOCATED:
        rate = attempt(f"co_located_{processes}", lambda n=processes: co_located_images_per_s(n, seconds), failures)
        emit(stage="train", co_located_processes=processes, batch=BATCH, path="graph",
             aggregate_images_per_s=rate and round(rate, 1))
    sampling = {path: attempt(f"sample_{path}", lambda graphed=graphed: best_ddpm_rate(graphed), failures)
                for path, graphed in (("eager", False), ("graph", True))}
    if None not in sampling.values():
        emit(stage="sample", sampler="ddpm-1000+cfg", **{f"{p}_batch": b for p, (b, _) in sampling.items()},
             **{f"{p}_images_per_s": round(r, 2) for p, (_, r) in sampling.items()},
             ratio=round(sampling["graph"][1] / sampling["eager"][1], 2))
    evaluation = attempt("evaluate", evaluation_images_per_s, failures)
    if evaluation:
        emit(stage="evaluate", images_per_s=round(evaluation, 1))
    if not failures:
        project({path: {"train": train[path], "sample": sampling[path][1], "evaluate": evaluation}
                 for path in ("eager", "graph")}, flops)
    return failures


def measure_stages(args: argparse.Namespace) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=("recipe", "stages"), default=["recipe"])
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="recipe: the time box of each training measurement")
    parser.add_argument("--steps", type=int, default=30, help="stages: timed U-Net training steps")
    parser.add_argument("--images", type=int, default=5000, help="stages: images drawn with dpmpp-25")
    parser.add_argument("--sample-batch", type=int, default=500, help="stages: their batch")
    parser.add_argument("--train-worker", nargs=2, metavar=("SECONDS", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    if args.train_worker:
        train_worker(float(args.train_worker[0]), Path(args.train_worker[1]))
        return
    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    emit(device=torch.cuda.get_device_name(), torch=torch.__version__)
    failures = measure_recipe(args.seconds) if "recipe" in args.parts else []
    if "stages" in args.parts:
        measure_stages(args)
    if failures:
        sys.exit(f"error: {len(failures)} measurement(s) failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()
