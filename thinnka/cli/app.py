"""The typer application every command module registers its commands on."""

from __future__ import annotations

import typer

from thinnka import __version__

__all__ = ["app"]

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
