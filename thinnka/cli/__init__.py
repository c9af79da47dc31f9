"""thinnka's command line: a thin typer layer over ``thinnka.operations``.

Exit codes: 0 success; 1 the run failed or was cancelled (or a remote error);
2 usage or validation error (nothing was created); 130 interrupted. Heavy
libraries are imported inside the commands, so ``thinnka --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from thinnka import __version__

__all__ = ["app", "main"]

app = typer.Typer(
    name="thinnka",
    help="Fine-tune a Hugging Face model on a rented Runpod GPU in one command.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"thinnka {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Fine-tune a Hugging Face model on a rented Runpod GPU in one command."""


# Importing the command modules registers their commands, in this order in --help.
from thinnka.cli import inspect as _inspect  # noqa: E402
from thinnka.cli import ops as _ops  # noqa: E402
from thinnka.cli import runs as _runs  # noqa: E402

_ = (_runs, _inspect, _ops)


def main() -> None:
    """Console entry point: map thinnka's errors to exit codes and short messages."""
    import atexit
    import logging
    import os

    from thinnka.cli.errors import run_app

    code = run_app(app)
    # Tearing down the interpreter (finalising paramiko, SQLAlchemy, httpx and
    # friends) costs about a third of a second after all work is done and
    # recorded. Run the exit hooks, flush, and leave without it.
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
