"""Click option callbacks shared by the domain command modules."""

from __future__ import annotations

import os
from pathlib import Path

import click

from a2i import MAX_BATCH, MAX_SEED

SEED = click.IntRange(0, MAX_SEED)  # as params.yaml's seeds
BATCH = click.IntRange(1, MAX_BATCH)  # as params.yaml's batch sizes


def unwritable(path: Path) -> str | None:
    """Why the file `path` cannot be written, if it cannot: checked before minutes of work, not after."""
    if path.is_dir():
        return f"{path} is a directory"
    if not path.parent.is_dir():
        return f"folder {path.parent} does not exist"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"folder {path.parent} is not writable"
    return None


def png_output(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """An output PNG: writable, and named .png (the commands write PNG bytes whatever the name says)."""
    problem = unwritable(value) or (None if value.suffix.lower() == ".png" else f"{value} is not a .png file")
    if problem:
        raise click.BadParameter(problem, ctx, param)
    return value


def folder_output(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """An output folder (made if missing): not a file, and inside a writable folder, checked before the work."""
    if value is None:
        return value
    existing = next(folder for folder in (value, *value.parents) if folder.exists())
    problem = (f"{existing} is a file" if not existing.is_dir() else
               None if os.access(existing, os.W_OK | os.X_OK) else f"folder {existing} is not writable")
    if problem:
        raise click.BadParameter(problem, ctx, param)
    return value
