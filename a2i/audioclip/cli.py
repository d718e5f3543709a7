"""Click commands of a2i.audioclip (registered by a2i.cli)."""

from __future__ import annotations

from pathlib import Path

import click

MAX_LISTED = 20  # problems printed by `verify`; a file of another model can mismatch hundreds of keys


@click.group("audioclip", context_settings={"show_default": True})
def audioclip() -> None:
    """AudioCLIP model and checkpoint tools."""


@audioclip.command("verify")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def verify(path: Path) -> None:
    """Check that PATH is an AudioCLIP checkpoint that loads with strict=True.

    Reports missing / unexpected keys, shape or dtype mismatches, well-known wrong files (CLIP.pt,
    ESRNXFBSP.pt), truncated files, and refuses pickles that need code execution. Exit status 1 when the
    file is not loadable.
    """
    from a2i.audioclip.checkpoint import CheckpointError, verify_checkpoint

    try:
        report = verify_checkpoint(path)
    except CheckpointError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{path}: sha256 {report['sha256']}")
    if report["problems"]:
        for problem in report["problems"][:MAX_LISTED]:
            click.echo(f"  - {problem}", err=True)
        if len(report["problems"]) > MAX_LISTED:
            click.echo(f"  - ... and {len(report['problems']) - MAX_LISTED} more", err=True)
        raise click.ClickException(f"{path}: not a loadable AudioCLIP checkpoint ({len(report['problems'])} problems)")
    if report["known"]:
        click.echo(f"{path}: OK, the released {report['known']}")
    else:
        click.echo(f"{path}: OK, keys and shapes fit AudioCLIP; warning: the sha256 is not a released checkpoint's")


COMMANDS: list = [audioclip]
