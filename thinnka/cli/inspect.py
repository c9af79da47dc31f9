"""Commands that read runs: ls, show, logs."""

from __future__ import annotations

import time
from typing import Any

import typer

from thinnka.cli import app
from thinnka.cli._common import open_command_session, print_json
from thinnka.cli.options import COMMON_OPTIONS, with_options


@app.command("ls")
@with_options(COMMON_OPTIONS)
def ls_command(
    show_all: bool = typer.Option(False, "--all", help="Include terminated runs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    **values: Any,
) -> int:
    """List runs (those not yet terminated, unless --all)."""
    from thinnka.operations import run_summary

    session = open_command_session(values["env_file"], values["log_json"])
    runs = session.store.list_runs(include_terminated=show_all)
    rows = [run_summary(session.store, run, events=False) for run in runs]
    if as_json:
        print_json(rows)
        return 0
    from thinnka.cli.render import print_runs_table

    print_runs_table(rows)
    return 0


@app.command("show")
@with_options(COMMON_OPTIONS)
def show_command(
    run_id: str = typer.Argument(..., help="The run to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    **values: Any,
) -> int:
    """Show one run: state, outcome, pod, cost, error and its events."""
    from thinnka.operations import cost_report, run_summary

    session = open_command_session(values["env_file"], values["log_json"])
    run = session.store.get(run_id)
    data = run_summary(session.store, run, events=True)
    data.update(cost_report(session, run))  # billed by Runpod where known, else the estimate
    if as_json:
        print_json(data)
        return 0
    from thinnka.cli.render import print_run

    print_run(data)
    return 0


@app.command("logs")
@with_options(COMMON_OPTIONS)
def logs_command(
    run_id: str = typer.Argument(..., help="The run whose logs to print."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing until the run ends."),
    **values: Any,
) -> int:
    """Print the local copy of a run's remote output (setup and training)."""
    session = open_command_session(values["env_file"], values["log_json"])
    run = session.store.get(run_id)
    path = session.settings.remote_log(run.id)
    offset = 0
    delay = 0.2
    while True:
        # Decide before reading, so the bytes written just before the end are printed.
        done = not follow or session.store.get(run.id).state.is_final()
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            if chunk:
                typer.echo(chunk.decode("utf-8", errors="replace"), nl=False)
                offset += len(chunk)
                delay = 0.2
        if done:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)  # adaptive: quick while lines flow, patient when idle
    if offset == 0 and not path.exists():
        typer.echo(f"No output recorded for {run.id} yet.", err=True)
    return 0
