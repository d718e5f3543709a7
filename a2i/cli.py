"""The `a2i` command: one click group; each domain contributes its commands.

Domain CLI modules import their heavy libraries (torch, diffusers, open_clip, pandas, ...) inside the command
functions, so `a2i --help` starts without them.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click

from a2i import __version__


class OneLineError(click.ClickException):
    """A click error shown as `error: <line>` for each line of its message (one for most errors, one per problem for
    a2i.config's, as the stages print them; click would add the usage and a hint to usage errors)."""

    def __init__(self, error: click.ClickException):
        super().__init__(error.format_message())
        self.exit_code = error.exit_code

    def show(self, file=None) -> None:
        for line in self.format_message().splitlines() or [""]:
            click.echo(f"error: {line}", file=file, err=True)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except OneLineError:
        raise
    except click.ClickException as error:
        raise OneLineError(error) from None
    except OSError as error:  # a file the command cannot write (a full disk, a path it may not create): its message
        raise OneLineError(click.ClickException(str(error))) from None
    except MemoryError as error:  # a size this machine cannot hold
        raise OneLineError(click.ClickException(str(error) or "out of memory")) from None


class A2iGroup(click.Group):
    """The `a2i` group: every usage or command error, its own or a subcommand's, is one line."""

    def make_context(self, *args, **kwargs) -> click.Context:
        with _one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        with _one_line_errors():
            return super().invoke(ctx)


@click.group(cls=A2iGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="a2i")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """a2i: audio-to-image generation with AudioCLIP embeddings and a conditional DDPM (SubURMP).

    The DVC pipeline (`dvc repro`, `dvc exp run`) runs the whole study; these commands run its parts
    by hand on your own files.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from a2i.io import exit_on_sigterm

    if threading.current_thread() is threading.main_thread():  # only there can a signal handler be set
        previous = exit_on_sigterm()  # a command stopped by `timeout` or `kill` leaves no temporary output
        click.get_current_context().call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


@main.command("params")
@click.option("--check", is_flag=True, help="Fail if params.yaml differs from the composition of conf/.")
@click.argument("overrides", nargs=-1)
def params_cmd(check: bool, overrides: tuple[str, ...]) -> None:
    """Compose conf/ (Hydra) into params.yaml, as `dvc exp run` does. OVERRIDES as in `-S`.

    Acts on the checkout of the current directory: the nearest folder up from it holding dvc.yaml.
    """
    from a2i import params
    from a2i.config import ConfigError

    path = params.find_repo() / "params.yaml"
    if check:
        if params.committed(path) != params.compose(path.parent / "conf", list(overrides)):
            raise click.ClickException(f"{path} differs from the composition of conf/: run `a2i params`")
        click.echo(f"{path} matches conf/")
        return
    try:
        written = params.write_params(path, list(overrides))
    except ConfigError as error:  # one problem per line
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {written}")


def _register() -> None:
    from a2i.audioclip.cli import COMMANDS as audioclip_commands
    from a2i.data.cli import COMMANDS as data_commands
    from a2i.diffusion.cli import COMMANDS as diffusion_commands
    from a2i.evaluation.cli import COMMANDS as evaluation_commands

    for command in (*data_commands, *audioclip_commands, *diffusion_commands, *evaluation_commands):
        main.add_command(command)


_register()


if __name__ == "__main__":  # python -m a2i.cli
    main()
