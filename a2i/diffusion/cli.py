"""Click commands of a2i.diffusion (registered by a2i.cli)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from a2i.audioclip import MIN_SECONDS
from a2i import MAX_BATCH
from a2i.cli_options import BATCH, SEED, folder_output, png_output, unwritable
from a2i.diffusion.schedule import DDPM_VARIANCES, SAMPLERS
from a2i.evaluation import MAX_BOOTSTRAP

if TYPE_CHECKING:
    import torch

    from a2i.diffusion.generate import Upscaling


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf: nan compares false with every bound, so passes a range."""

    def convert(self, value, param, ctx) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number


def _device(ctx: click.Context, param: click.Parameter, value: str | None) -> torch.device | None:
    from a2i.devices import parse_device

    try:
        return parse_device(value) if value is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from None


def _high_output(output: Path) -> Path:
    """Where `generate --upscale` writes the upsampled grid; checked with the options, before any sampling."""
    high = output.with_name(f"{output.stem}_hr{output.suffix}")
    problem = unwritable(high)
    if problem:
        raise click.BadParameter(problem, param_hint="'-o' / '--output' (with --upscale)")
    return high


def _upscaling(checkpoint: Path | None, sampler: str | None, steps: int | None,
               aug_level: int | None) -> Upscaling | None:
    """The super-resolution of `generate`: the options given, the pipeline's for the others (sample_sr of
    params.yaml, as compare-samplers reads sample; conf/config.yaml's defaults, `Upscaling`'s, without one)."""
    from a2i.config import SampleSRConfig, load_section_config
    from a2i.diffusion.generate import Upscaling

    if checkpoint is None:
        return None
    given = {key: value for key, value in {"sampler": sampler, "steps": steps, "aug_level": aug_level}.items()
             if value is not None}
    if len(given) < 3 and Path("params.yaml").is_file():
        pipeline = load_section_config(SampleSRConfig)
        given = {"sampler": pipeline.sampler, "steps": pipeline.steps, "aug_level": pipeline.aug_level, **given}
    return Upscaling(checkpoint, **given)


@click.command("generate", context_settings={"show_default": True})
@click.option("--model", "model", required=True, type=click.Path(path_type=Path),
              help="Run directory models/diffusion/<variant> (its newest checkpoint) or one epoch_*.pt.")
@click.option("--audio", required=True, type=click.Path(path_type=Path), help="WAV file (any rate, mono/stereo).")
@click.option("--seconds", type=FiniteFloat(min=MIN_SECONDS), default=None,
              help="Clip length to use [default: the model's length].")
@click.option("--n", "n", type=BATCH, default=4, help="Images to draw.")
@click.option("--guidance", type=FiniteFloat(min=0), default=None,
              help="Classifier-free guidance scale (1 = conditional only) [default: 3; 1 for a model trained "
                   "without condition dropout (-nocfg), which takes no other].")
@click.option("--sampler", type=click.Choice(SAMPLERS), default="dpmpp", help="Sampler of the --model.")
@click.option("--steps", type=click.IntRange(min=1), default=25,
              help="Steps of the --model's sampler, at most its training timesteps (ddpm: use 1000, train.timesteps).")
@click.option("--seed", type=SEED, default=0)
@click.option("--audio-model", type=click.Path(path_type=Path), default=None,
              help="Fine-tuned AudioCLIP heads [default: models/audioclip/<the model's embedding>.pt of the "
                   "checkout that holds --model, else of the current folder].")
@click.option("--device", default=None, callback=_device,
              help="cpu, cuda, cuda:1 [default: cuda when available].")
@click.option("--upscale", type=click.Path(path_type=Path), default=None,
              help="Super-resolution checkpoint (models/superres.pt): also write <output>_hr.png, the images "
                   "upsampled, sampled with --upscale-sampler, --upscale-steps and --aug-level (not --sampler, "
                   "--steps, which drive the --model).")
@click.option("--upscale-sampler", type=click.Choice(SAMPLERS), default=None,
              help="Sampler of the --upscale model [default: sample_sr.sampler of params.yaml; without one dpmpp].")
@click.option("--upscale-steps", type=click.IntRange(min=1), default=None,
              help="Steps of the --upscale model's sampler, at most its train_sr.t_start [default: sample_sr.steps "
                   "of params.yaml; without one 6].")
@click.option("--aug-level", type=click.IntRange(min=0), default=None,
              help="Noise level of the --upscale model's low-resolution input, below its train_sr.aug_max "
                   "[default: sample_sr.aug_level of params.yaml; without one 0].")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), callback=png_output,
              help="PNG grid to write (its folder must exist).")
def generate_cmd(model: Path, audio: Path, seconds: float | None, n: int, guidance: float | None, sampler: str,
                 steps: int, seed: int, audio_model: Path | None, device: torch.device | None, upscale: Path | None,
                 upscale_sampler: str | None, upscale_steps: int | None, aug_level: int | None,
                 output: Path) -> None:
    """Draw images for your own audio clip with a trained model (and upsample them with --upscale)."""
    from a2i.diffusion.generate import generate
    from a2i.diffusion.images import image_grid, save_png

    high_path = _high_output(output) if upscale is not None else None
    try:
        upscaling = _upscaling(upscale, upscale_sampler, upscale_steps, aug_level)
        images, high = generate(model, audio, seconds=seconds, n=n, guidance=guidance, sampler=sampler,
                                steps=steps, seed=seed, audio_model=audio_model, device=device, upscale=upscaling)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    save_png(image_grid(images, columns=n), output)
    click.echo(f"wrote {output} ({n} images)")
    if high is not None:
        save_png(image_grid(high, columns=n), high_path)
        click.echo(f"wrote {high_path} ({n} images, {high.shape[1]}x{high.shape[2]})")


@click.command("compare-samplers", context_settings={"show_default": True})
@click.option("--variant", required=True, help="Trained variant, e.g. text-2s.")
@click.option("--per-class", type=click.IntRange(1, MAX_BATCH), default=20,
              help="Test conditions per instrument (this comparison's own, not sample.per_class).")
@click.option("--guidance", type=FiniteFloat(min=0), default=None,
              help="Classifier-free guidance scale [default: 3; 1 for a -nocfg variant, which takes no other].")
@click.option("--seed", type=SEED, default=0)
@click.option("--batch-size", type=BATCH, default=64)
@click.option("--ddpm-variance", type=click.Choice(DDPM_VARIANCES), default=None,
              help="Posterior variance of the ddpm reference [default: sample.ddpm_variance of params.yaml, the "
                   "pipeline's].")
@click.option("--classifier", type=click.Path(path_type=Path), default=Path("models/classifier.pt"),
              help="Instrument classifier of the classify stage, to score adherence.")
@click.option("--bootstrap", type=click.IntRange(1, MAX_BOOTSTRAP), default=1000,
              help="Bootstrap resamples for the paired intervals (this comparison's own, not evaluate.bootstrap).")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None, callback=folder_output,
              help="Output folder [default: data/sampler_check/<variant>].")
def compare_samplers_cmd(variant: str, per_class: int, guidance: float | None, seed: int, batch_size: int,
                         ddpm_variance: str | None, classifier: Path, bootstrap: int, out: Path | None) -> None:
    """Sample the final checkpoint with ddpm at every timestep (1000 on the thesis schedule) and dpmpp-25 on the
    same test conditions and compare their
    adherence (paired bootstrap interval of the difference) and time; writes timing.json and adherence.json."""
    from a2i.config import SampleConfig, load_section_config
    from a2i.diffusion.sample import compare_samplers
    from a2i.evaluation.classifier import load_classifier
    from a2i.evaluation.evaluate import paired_adherence
    from a2i.io import write_json

    try:
        scorer = load_classifier(classifier)
        ddpm_variance = ddpm_variance or load_section_config(SampleConfig).ddpm_variance
        timing = compare_samplers(variant, out=out, per_class=per_class, guidance=guidance, seed=seed,
                                  batch_size=batch_size, ddpm_variance=ddpm_variance, image_size=scorer.image_size)
        adherence = paired_adherence(timing["files"], scorer, bootstrap, seed)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    reference, *others = adherence
    write_json(Path(timing["files"][reference]).with_name("adherence.json"), adherence)
    for name, result in adherence.items():
        click.echo(f"{name}: adherence {result['adherence']:.3f} [{result['ci_low']:.3f}, {result['ci_high']:.3f}] "
                   f"in {timing[name + '_s']:.1f} s")
    for name in others:
        diff = f"minus_{reference}"
        click.echo(f"{name} minus {reference}: {adherence[name][diff]:+.3f} [{adherence[name][diff + '_ci_low']:+.3f}, "
                   f"{adherence[name][diff + '_ci_high']:+.3f}], {timing[reference + '_s'] / timing[name + '_s']:.1f}x "
                   f"faster")


COMMANDS: list = [generate_cmd, compare_samplers_cmd]
