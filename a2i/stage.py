"""What every DVC stage script in `stages/` shares: its command line, logging and one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

from a2i.io import exit_on_sigterm
from a2i.resources import usage_line

log = logging.getLogger(__name__)
ONE_LINE_ERRORS = (ValueError, OSError, MemoryError)


class Option(NamedTuple):
    """A stage's `--<name>` option: required unless it has a default; `choices`: the values it takes."""

    name: str
    help: str
    default: str | None = None
    choices: tuple[str, ...] | None = None


def run_stage(doc: str, action: Callable[..., object], *options: Option,
              errors: tuple[type[Exception], ...] = ()) -> None:
    """Parse `options` from the command line (`doc`, the script's docstring, is the --help description) and call
    `action` with them as keywords, logging at INFO.

    ONE_LINE_ERRORS, and the stage's own `errors`, end the process with the line `error: <message>` (one per line
    of the message: a2i.config reports every bad parameter at once) and a non-zero exit: they report a bad input
    or parameter, a file that cannot be written or a size the machine cannot hold, which a traceback would only
    bury. SIGTERM does too, after the clean-ups (an atomic write removes its temporary file) that the
    default handler would skip. A stage that ends well logs its `a2i.resources` line.
    """
    parser = argparse.ArgumentParser(description=doc)
    for option in options:
        parser.add_argument(f"--{option.name}", required=option.default is None, default=option.default,
                            choices=option.choices, help=option.help)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    exit_on_sigterm()
    start = time.perf_counter()
    try:
        action(**vars(args))
    except (*ONE_LINE_ERRORS, *errors) as error:
        lines = str(error).splitlines() or [type(error).__name__]
        raise SystemExit("\n".join(f"error: {line}" for line in lines)) from None
    log.info(usage_line(_stage_name(vars(args), options), time.perf_counter() - start))


def _stage_name(args: dict[str, str], options: tuple[Option, ...]) -> str:
    """`train@text-1s`, `classify@hr`: the script's name and its matrix item, i.e. every option given another
    value than its default (the device option is never part of it)."""
    defaults = {option.name: option.default for option in options}
    return Path(sys.argv[0]).stem + "".join(f"@{value}" for name, value in args.items()
                                            if name != "device" and value != defaults.get(name))
