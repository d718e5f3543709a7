"""Click commands of a2i.evaluation (registered by a2i.cli)."""

from __future__ import annotations

from pathlib import Path

import click

from a2i.cli_options import BATCH


@click.command("fid")
@click.argument("path1", type=click.Path(exists=True, path_type=Path))
@click.argument("path2", type=click.Path(exists=True, path_type=Path))
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="pytorch-fid Inception state_dict (pt_inception-2015-12-05-6726825d.pth); "
                   "default: the file pytorch-fid caches in $TORCH_HOME/hub/checkpoints/.")
@click.option("--batch-size", type=BATCH, default=50, help="Images per Inception forward pass.")
@click.option("--device", default="auto",
              help="auto (a free GPU, else the CPU), cpu, cuda or cuda:<index>.")
def fid_cmd(path1: Path, path2: Path, weights: Path | None, batch_size: int, device: str) -> None:
    """FID between two image sets with pytorch-fid's InceptionV3 (pool3, 2048-d).

    Each PATH is a folder of images or an .npz holding `images` uint8 [N, H, W, 3]. On folders the value equals
    `python -m pytorch_fid PATH1 PATH2` with the same weights.
    """
    from a2i.devices import select_device
    from a2i.evaluation.fid import fid_between

    try:
        chosen = select_device(device)  # as the stages choose: a free GPU when there is one
    except ValueError as error:  # an unknown device, or cuda without CUDA
        raise click.BadParameter(str(error), param_hint="--device") from None
    try:
        value = fid_between(path1, path2, weights, batch_size, str(chosen))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"FID: {value}")


COMMANDS: list = [fid_cmd]
