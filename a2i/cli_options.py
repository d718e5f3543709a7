"""Click option callbacks shared by the domain command modules."""

from __future__ import annotations

import os
from pathlib import Path

import click


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
