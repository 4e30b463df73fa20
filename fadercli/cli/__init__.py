"""The `fader` command: a thin shell over the Python API.

Command modules import torch and cv2 inside their functions, so `fader --help` stays fast.
This package holds the one error boundary: a FaderError becomes one line on stderr and its exit
code (FADER_DEBUG=1 shows the traceback instead).
"""

from __future__ import annotations

import logging
import sys

import typer
from typer.core import TyperGroup

from fadercli import __version__, env_flag, logger
from fadercli.cli import align as _align
from fadercli.cli import demo as _demo
from fadercli.cli import edit as _edit
from fadercli.cli import info as _info
from fadercli.cli import inspect as _inspect
from fadercli.cli import models as _models
from fadercli.cli import serve as _serve
from fadercli.cli import share as _share
from fadercli.cli import sweep as _sweep
from fadercli.cli import train as _train
from fadercli.errors import FaderError, UsageError, one_line

try:  # typer 0.28 carries its own click, with its own exceptions
    from typer import TyperException as _CommandLineError
except ImportError:  # older typer runs on click
    from click import ClickException as _CommandLineError

INTERRUPTED = 130  # the shell's convention for SIGINT


def debug_enabled() -> bool:
    return env_flag("FADER_DEBUG")


class _ErrorBoundary(TyperGroup):
    """Turns known failures raised by any command into a one-line message and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FaderError as e:
            if debug_enabled():
                raise
            typer.echo(f"fader: error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None
        except _CommandLineError as e:
            _usage_error(e)
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            typer.echo("fader: interrupted", err=True)
            raise typer.Exit(INTERRUPTED) from None

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _CommandLineError as e:
            _usage_error(e)


def _usage_error(e: Exception):
    """Typer's usage errors (a bad option value, an unknown command or option) as one line and exit 2,
    like every other error, instead of a usage block; anything else as it was."""
    if (
        debug_enabled()
        or getattr(e, "exit_code", None) != UsageError.exit_code
        or not hasattr(e, "format_message")
        or type(e).__name__ == "NoArgsIsHelpError"
    ):  # a bare `fader models`: its help, as asked
        raise e
    where = e.ctx.command_path if getattr(e, "ctx", None) is not None else "fader"
    typer.echo(f"fader: error: {one_line(e.format_message())} (see {where} --help)", err=True)
    raise typer.Exit(UsageError.exit_code) from None


app = typer.Typer(
    cls=_ErrorBoundary,
    name="fader",
    help="Edit faces in your own photos with Fader Networks.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,
    # Plain help: Typer's rich help formatter imports markdown-it and friends, half of `--help`'s time.
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _Stderr(logging.Handler):
    """The library's messages on whatever sys.stderr is when they are emitted (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            # Training's lines are its log and stand bare; everything else is fader speaking.
            bare = record.name == "fadercli.train" and record.levelno < logging.WARNING
            sys.stderr.write(f"{message}\n" if bare else f"fader: {message}\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _show_messages(verbose: bool) -> None:
    """The stderr handler, once per process, and the level this run asks for (a command's --quiet
    raises it to warnings later)."""
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        logger.addHandler(_Stderr())
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"fader {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also say what fader does step by step."),
) -> None:
    """Edit faces in your own photos with Fader Networks."""
    _show_messages(verbose)


app.command("edit")(_edit.edit)
app.command("sweep")(_sweep.sweep)
app.command("inspect")(_inspect.inspect)
app.command("info")(_info.info)
app.add_typer(_models.app)
app.command("align")(_align.align)
app.command("train")(_train.train)
app.command("eval")(_train.evaluate)
app.command("plot")(_share.plot)
app.command("export")(_share.export)
app.command("push")(_share.push)
app.command("demo")(_demo.demo)
app.command("serve")(_serve.serve)


def main() -> None:
    app(prog_name="fader")
