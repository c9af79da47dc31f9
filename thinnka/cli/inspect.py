"""Commands that read runs: ls, show, logs."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from thinnka.cli._common import open_command_session, print_json
from thinnka.cli.app import app
from thinnka.cli.flags import COMMON_OPTIONS, with_options


@app.command("ls")
@with_options(COMMON_OPTIONS)
def ls_command(
    show_all: bool = typer.Option(False, "--all", help="Include terminated runs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    sort: str | None = typer.Option(
        None,
        "--sort",
        help="score:NAME: best eval score after training first (loss and "
        "perplexity lowest, rewards and accuracies highest); runs without it last.",
    ),
    score: list[str] | None = typer.Option(
        None,
        "--score",
        help="Only runs whose eval score after training passes NAME>=VALUE "
        "(or <=, >, <, =); repeatable.",
    ),
    **values: Any,
) -> int:
    """List runs (those not yet terminated, unless --all), their eval scores with --json."""
    from thinnka.cli.scores import keep_passing, parse_score_filter, parse_sort, sort_by_score
    from thinnka.operations import run_summary

    by = parse_sort(sort)
    tests = [parse_score_filter(item) for item in score or []]
    session = open_command_session(values["env_file"], values["log_json"], read_only=True)
    runs = session.store.list_runs(include_terminated=show_all)
    rows = [run_summary(session.store, run, events=False) for run in runs]
    scores = session.store.scores.of_runs(row["id"] for row in rows)
    for row in rows:
        row["scores"] = [s.to_json() for s in scores[row["id"]]]
    rows = keep_passing(rows, tests)
    if by is not None:
        rows = sort_by_score(rows, by)
    if as_json:
        print_json(rows)
        return 0
    from thinnka.cli.display import print_runs_table

    print_runs_table(rows, score=by or (tests[0][0] if tests else None))
    return 0


@app.command("show")
@with_options(COMMON_OPTIONS)
def show_command(
    run_id: str = typer.Argument(..., help="The run to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    **values: Any,
) -> int:
    """Show one run: state, outcome, pod, cost, error and its events."""
    from thinnka.events.sinks import sink_names
    from thinnka.operations import cost_report, run_summary

    session = open_command_session(values["env_file"], values["log_json"], read_only=True)
    run = session.store.get(run_id)
    data = run_summary(session.store, run, events=True)
    data.update(cost_report(session, run))  # billed by Runpod where known, else the estimate
    data["outbox"] = session.store.outbox.counts(run.id, sink_names(session.settings, run.options))
    data["metrics"] = session.store.metrics.latest(run.id)
    if as_json:
        print_json(data)
        return 0
    from thinnka.cli.curves import curve_lines
    from thinnka.cli.display import print_run
    from thinnka.events.metrics import EVAL_PREFIX, MAIN_METRICS

    print_run(data)
    from thinnka.cli.scores import print_run_extras

    print_run_extras(data)
    for sink, counts in data["outbox"].items():
        typer.echo(
            f"  {sink:9} {counts['pending']} events pending, {counts['delivered']} delivered"
            + (f", {counts['failed']} undeliverable" if counts["failed"] else "")
        )
    series = session.store.metrics.series(run.id)
    lines = curve_lines(series, [
        *MAIN_METRICS, *sorted(n for n in series if n.endswith("/mean")),
        *sorted(n for n in series if n.startswith(EVAL_PREFIX)),
    ])  # fmt: skip
    if lines:
        typer.echo("metrics")
        for line in lines:
            typer.echo(f"  {line}")
    return 0


@app.command("logs")
@with_options(COMMON_OPTIONS)
def logs_command(
    run_id: str = typer.Argument(..., help="The run whose logs to print."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing until the run ends."),
    **values: Any,
) -> int:
    """Print the local copy of a run's remote output (setup and training)."""
    session = open_command_session(values["env_file"], values["log_json"], read_only=True)
    run = session.store.get(run_id)
    path = session.settings.remote_log(run.id)
    offset = 0
    delay = 0.2
    live = None
    if follow and sys.stdout.isatty():  # the live status block above the lines
        from thinnka.cli.console import ConsoleOutput

        live = ConsoleOutput(secrets=session.settings.secrets())
        live.attach(session.store, run.id)
    while True:
        # Decide before reading, so the bytes written just before the end are printed.
        done = not follow or session.store.get(run.id).state.is_final()
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            if live is not None:
                chunk = chunk[: chunk.rfind(b"\n") + 1]  # whole lines only
                for text in chunk.decode("utf-8", errors="replace").splitlines():
                    live.raw(text)
            elif chunk:
                typer.echo(chunk.decode("utf-8", errors="replace"), nl=False)
            if chunk:
                offset += len(chunk)
                delay = 0.2
        if done:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)  # adaptive: quick while lines flow, patient when idle
    if live is not None:
        live.close()
    if offset == 0 and not path.exists():
        typer.echo(f"No output recorded for {run.id} yet.", err=True)
    return 0


@app.command("report")
@with_options(COMMON_OPTIONS)
def report_command(
    run_id: str = typer.Argument(..., help="The run to report on."),
    output: str | None = typer.Option(
        None, "--output", "-o", help="An HTML file or a folder (default state/runs/ID/report.html)."
    ),
    **values: Any,
) -> int:
    """Write one self-contained HTML page about a run: summary, timeline, cost, plan, plots.

    Nothing in it is fetched from elsewhere (inline CSS and SVG), so it opens
    offline and can be shared as one file. Prints the file's path.
    """
    import datetime as dt

    from thinnka.operations import run_summary
    from thinnka.report import ReportData, render_report, report_path, write_report

    session = open_command_session(values["env_file"], values["log_json"], read_only=True)
    run = session.store.get(run_id)
    default = session.settings.state_dir / "runs" / run.id / "report.html"
    target = report_path(output, default, run.id)
    page = render_report(
        ReportData(
            run=run_summary(session.store, run, events=True),
            series=session.store.metrics.series(run.id),
            generated_at=dt.datetime.now(dt.UTC),
        )
    )
    write_report(target, page)
    typer.echo(str(target))
    return 0
