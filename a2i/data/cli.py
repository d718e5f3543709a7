"""Click commands of a2i.data (registered by a2i.cli)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from a2i.cli_options import png_output
from a2i.data import SILENCE_PEAK


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(str(error))


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def _checked(section: type, **options) -> dict:
    """`options`, named as keys of the params.yaml `section` (an a2i.config class), checked and normalised by the
    rules the pipeline applies to those keys, so that a command accepts what its stage accepts; before any work,
    one line names every bad option."""
    rules = {f.name: f.metadata["rule"] for f in dataclasses.fields(section)}
    problems: list[str] = []
    values = {key: rules[key].parse(_option(key), value, problems) for key, value in options.items()}
    if problems:
        raise click.UsageError("; ".join(problems))
    return values


@click.command("synthesize")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("data/synthetic"),
              help="Folder that receives Sub-URMP/ (one already there, the pipeline's by default, is replaced).")
@click.option("--seed", type=int, default=0)
@click.option("--train-performances", type=int, default=4, help="Performances per instrument in train/.")
@click.option("--validation-performances", type=int, default=1, help="Performances per instrument in validation/.")
@click.option("--performance-seconds", type=float, default=14.0, help="Length of every performance.")
@click.option("--frame-width", type=int, default=480)
@click.option("--frame-height", type=int, default=270)
def synthesize_cmd(out: Path, **options) -> None:
    """Write the synthetic Sub-URMP (real layout and formats) under OUT/Sub-URMP.

    The defaults are the pipeline's: the `synthesize` section of conf/config.yaml (a test keeps them equal).
    """
    from a2i.config import SynthesizeConfig
    from a2i.data.synthetic import synthesize

    options = _checked(SynthesizeConfig, **options)
    try:
        root = synthesize(out, **options)
    except ValueError as error:
        raise _fail(error) from None
    click.echo(f"wrote {root}")


def _lengths(ctx, param, value: str) -> list[float]:
    try:
        return [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of seconds") from None


@click.command("prepare")
@click.option("--raw", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Sub-URMP root (holds chunk/ and img/).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (replaced when complete).")
@click.option("--lengths", default="1,2,3,4,5", callback=_lengths,
              help="Sample lengths in seconds (the thesis'; the CPU demo's are params.yaml's prepare.lengths).")
@click.option("--silence-peak", type=int, default=SILENCE_PEAK, help="Drop samples whose int16 peak is below this.")
@click.option("--image-size", type=int, default=64,
              help="Side of the square crops (the thesis'; the CPU demo's is params.yaml's prepare.image_size).")
@click.option("--on-bad-file", type=click.Choice(["error", "skip"]), default="error",
              help="skip: leave bad files out and list them in OUT/skipped.csv.")
def prepare_cmd(raw: Path, out: Path, lengths, silence_peak: int, image_size: int, on_bad_file: str) -> None:
    """Cut Sub-URMP into L-second samples with square images (64x64 in the thesis, 4.2.1), packed into OUT.

    Crops default to the centred full-height square; per-instrument boxes and trims come from params.yaml
    (`prepare.crop`, `prepare.trim`) through the DVC stage.
    """
    from a2i.config import PrepareConfig
    from a2i.data.prepare import prepare

    options = _checked(PrepareConfig, lengths=lengths, silence_peak=silence_peak, image_size=image_size)
    try:
        prepare(raw, out, **options, on_bad_file=on_bad_file)
    except ValueError as error:
        raise _fail(error) from None
    click.echo(f"wrote {out} (counts in {out / 'counts.csv'})")


@click.command("download")
@click.option("--item", "items", multiple=True, type=click.Choice(["suburmp", "audioclip", "inception"]),
              default=("suburmp",), help="What to fetch (repeat the option for several).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("data/download"),
              help="Where each item gets its folder, <out>/<item>/, with a manifest.json.")
@click.option("--local-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Validate files placed here by hand and link them into --out instead of fetching.")
@click.option("--params", "params_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("params.yaml"),
              help="Where the URLs, sha256, retries and, without --local-dir, download.source and local_dir "
                   "come from.")
def download_cmd(items, out: Path, local_dir: Path | None, params_path: Path) -> None:
    """Fetch the real Sub-URMP and/or pretrained weights (URLs and sha256 from params.yaml `download`)."""
    from a2i.config import ConfigError, DownloadConfig
    from a2i.data.download import download
    from a2i.params import load_section

    options = {"items": list(items)}
    if local_dir is not None:
        options.update(source="local", local_dir=str(local_dir))
    section = load_section("download", params_path)
    try:  # the stage's rules, before anything is fetched or created
        config = DownloadConfig.from_params({**section, **options} if isinstance(section, dict) else section)
    except ConfigError as error:
        raise click.ClickException(f"{params_path}: {'; '.join(error.problems)}") from None
    try:
        manifests = download(out, **config.kwargs())
    except ValueError as error:
        raise _fail(error) from None
    click.echo(f"manifests: {', '.join(str(path) for path in manifests.values())}")


def _crop(ctx, param, value: str | None) -> dict | None:
    import yaml

    if value is None:
        return None
    try:
        crop = yaml.safe_load(value)
    except yaml.YAMLError:
        crop = None
    if not isinstance(crop, dict):
        raise click.BadParameter(f"'{value}' is not a mapping such as '{{cello: [0.1, 0, 0.662, 1]}}'")
    return crop


@click.command("crops")
@click.option("--raw", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sub-URMP root (holds chunk/ and img/).  [default: prepare.raw of params.yaml]")
@click.option("--crop", default=None, callback=_crop,
              help="Boxes as YAML, '{instrument: [left, top, right, bottom]}' in frame fractions.  "
                   "[default: prepare.crop of params.yaml; none outside a checkout, with --raw]")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("crops.png"), callback=png_output,
              help="PNG to write (its folder must exist).")
def crops_cmd(raw: Path | None, crop: dict | None, out: Path) -> None:
    """Draw the crop boxes on the middle frame of every performance (a PNG contact sheet), to check them by eye.

    Instruments without a box show the default centred full-height square.
    """
    from a2i.config import ConfigError, PrepareConfig, load_section_config
    from a2i.data.crops import contact_sheet

    if crop is None and raw is not None and not Path("params.yaml").is_file():  # a Sub-URMP outside a checkout
        crop = {}
        click.echo("no params.yaml here: drawing every instrument's default centred square")
    if raw is None or crop is None:  # params.yaml is read (and checked as the prepare stage checks it) only then
        try:
            section = load_section_config(PrepareConfig)
        except ConfigError as error:  # one problem per line
            raise click.ClickException(str(error)) from None
        raw = Path(section.raw) if raw is None else raw
        crop = section.crop if crop is None else crop
    try:
        performances = contact_sheet(raw, crop, out)
    except ValueError as error:
        raise _fail(error) from None
    click.echo(f"wrote {out} ({len(performances)} performances)")


COMMANDS: list = [synthesize_cmd, prepare_cmd, download_cmd, crops_cmd]
