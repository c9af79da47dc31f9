"""Commands for operating an installation: reap, recover, gpus, doctor."""

from __future__ import annotations

from typing import Any

import typer

from thinnka.cli._common import open_command_session, print_json
from thinnka.cli.app import app
from thinnka.cli.flags import COMMON_OPTIONS, with_options


@app.command("reap")
@with_options(COMMON_OPTIONS)
def reap_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be terminated."),
    **values: Any,
) -> int:
    """Terminate this installation's pods that no live run owns.

    Only pods carrying this installation's THINNKA_OWNER are considered; pods
    of other installations and pods not made by thinnka are never touched.
    """
    from thinnka.recovery import reap

    session = open_command_session(values["env_file"], values["log_json"])
    report = reap(session, dry_run=dry_run)
    verb = "would terminate" if dry_run else "terminated"
    for pod in report.reaped:
        typer.echo(f"{verb} {pod.id} ({pod.name})")
    for pod, error in report.errors:
        typer.echo(f"could not terminate {pod.id} ({pod.name}): {error}", err=True)
    for pod, why in report.kept:
        typer.echo(f"kept {pod.id} ({pod.name}): {why}")
    if not report.reaped and not report.errors and not report.kept:
        typer.echo("No stray pods.")
    return 1 if report.errors else 0


@app.command("recover")
@with_options(COMMON_OPTIONS)
def recover_command(
    as_json: bool = typer.Option(False, "--json", help="Print what was done per run as JSON."),
    **values: Any,
) -> int:
    """Finish or clean up runs whose process died, then reap stray pods (for cron).

    One bounded pass (well under a minute): runs with a live lease are left
    alone; a training still running is left to the pod's watchdog (its cost is
    recorded); a training that ended is finished (push verified, pod
    terminated); a run that died before training is cancelled. Idempotent.
    """
    from thinnka.cli.console import ConsoleOutput
    from thinnka.recovery import recover

    session = open_command_session(values["env_file"], values["log_json"])
    report = recover(session, ConsoleOutput(secrets=session.settings.secrets()))
    if as_json:
        print_json(
            {
                "runs": [action.to_json() for action in report.runs],
                "reaped": [{"id": pod.id, "name": pod.name} for pod in report.reaped],
                "errors": [{"id": what, "error": error} for what, error in report.errors],
            }
        )
        return 1 if report.errors else 0
    for action in report.runs:
        outcome = f" ({action.outcome})" if action.outcome else ""
        typer.echo(f"{action.run_id}: {action.state}{outcome} [{action.action}]")
    for run_id, error in report.errors:
        typer.echo(f"{run_id}: {error}", err=True)
    for pod in report.reaped:
        typer.echo(f"reaped {pod.id} ({pod.name})")
    return 1 if report.errors else 0


@app.command("gpus")
@with_options(COMMON_OPTIONS)
def gpus_command(
    gpu_count: int = typer.Option(1, "--gpu-count", help="Price and stock for this many GPUs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    **values: Any,
) -> int:
    """Show Runpod's GPU catalog: memory, price per hour and stock."""
    from thinnka.operations import gpu_catalog
    from thinnka.preflight import offer_json

    session = open_command_session(values["env_file"], values["log_json"], read_only=True)
    offers = gpu_catalog(session, gpu_count)
    if as_json:
        print_json([offer_json(offer) for offer in offers])
        return 0
    from thinnka.cli.display import print_gpus

    print_gpus(offers)
    return 0


@app.command("doctor")
@with_options(COMMON_OPTIONS)
def doctor_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    **values: Any,
) -> int:
    """Check settings, keys, the database and the services thinnka needs."""
    from thinnka.doctor import run_checks

    session = open_command_session(
        values["env_file"], values["log_json"], require_usable=False, read_only=True
    )
    checks = run_checks(session)
    if as_json:
        print_json([check.to_json() for check in checks])
    else:
        for check in checks:
            mark = {"ok": "[ok]", "warn": "[warn]", "fail": "[FAIL]"}[check.status]
            typer.echo(f"{mark:7} {check.name}: {check.detail}")
    return 1 if any(check.status == "fail" for check in checks) else 0
