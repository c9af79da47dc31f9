"""Commands that start or drive runs: run, plan, resume, cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from thinnka.cli._common import load, open_command_session, print_json, sigterm_as_interrupt
from thinnka.cli.app import app
from thinnka.cli.flags import COMMON_OPTIONS, RUN_OPTIONS, options_from_kwargs, with_options

if TYPE_CHECKING:
    from thinnka.store import RunRecord


def _exit_code(run: RunRecord) -> int:
    from thinnka.machine import Outcome, RunState

    # A pushed run whose pod would not go yet succeeded too (recover and the pod's
    # watchdog end that pod): the model is on the Hub.
    if run.state in (RunState.terminated, RunState.pushed) and run.outcome is Outcome.succeeded:
        return 0
    return 1


@app.command("run")
@with_options(RUN_OPTIONS, COMMON_OPTIONS)
def run_command(**values: Any) -> int:
    """Fine-tune a model on a rented GPU: check, plan, create a pod, train, push, terminate.

    The first line on stdout is `run <run-id>`. Exit 0 when the run succeeded,
    1 when it failed or was cancelled (its pod cleaned up), 2 for invalid
    options (nothing created), 130 when interrupted (the pod is cleaned up).

    Example: thinnka run --repo-id Qwen/Qwen2.5-0.5B-Instruct --sft --max-steps 100
    """
    options = options_from_kwargs(values)
    if options.dry_run:
        return _plan(options, values, as_json=False)
    from thinnka.preflight import begin_run_checks
    from thinnka.services import LiveServices

    settings = load(values["env_file"], values["log_json"])
    # Invalid options stop here (exit 2); the Hub and Runpod are then asked in the
    # background while the imports below and the database's opening take their time.
    services = LiveServices(settings)
    checks = begin_run_checks(services, options)
    from thinnka.cli.console import ConsoleOutput
    from thinnka.operations import drive, open_session, start_run

    session = open_session(settings)
    services.store = session.store  # the installation id (a pod's owner) lives there
    session.services = services
    output = ConsoleOutput(secrets=settings.secrets())
    sigterm_as_interrupt()
    run_id, runner = start_run(session, options, output, checks=checks)
    output.echo(f"run {run_id}")
    run = drive(runner, run_id, detach=options.detach)
    return 0 if options.detach and run.outcome is None else _exit_code(run)


def _plan(options: Any, values: dict[str, Any], *, as_json: bool) -> int:
    from thinnka.cli.display import print_plan
    from thinnka.errors import ConfigError, RemoteError
    from thinnka.operations import plan_run
    from thinnka.options import validate

    validate(options)
    session = open_command_session(values["env_file"], values["log_json"], read_only=True)
    try:
        plan = plan_run(session, options)
    except RemoteError as error:
        # No plan without the Hub or Runpod: like refused input, nothing exists (exit 2).
        raise ConfigError(error.message, reason=error.reason) from error
    if as_json:
        print_json(plan.to_json())
    else:
        print_plan(plan)
    return 0


@app.command("plan")
@with_options(RUN_OPTIONS, COMMON_OPTIONS)
def plan_command(
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
    **values: Any,
) -> int:
    """Check the model and plan a run without renting anything.

    Shows the memory estimate, the GPU candidates with prices, the rendered
    recipe and the launch command. Works without credentials for a public model;
    what it cannot check without them is reported as a warning.
    """
    return _plan(options_from_kwargs(values), values, as_json=as_json)


@app.command("resume")
@with_options(COMMON_OPTIONS)
def resume_command(
    run_id: str = typer.Argument(..., help="The run to continue, e.g. r-7f3k2q."),
    progress_url: str | None = typer.Option(
        None, "--progress-url", help="The webhook the run was started with by flag (not stored)."
    ),
    discord_webhook_url: str | None = typer.Option(
        None,
        "--discord-webhook-url",
        help="The Discord webhook the run was started with by flag (not stored).",
    ),
    **values: Any,
) -> int:
    """Continue a run whose process died: re-attach to its pod and finish it.

    Exits 1 naming the holder when another live process drives the run. Sink
    URLs given to `run` by flag are secrets and never stored: give them again
    here (or set them in .env) for the run's waiting events to be delivered.
    """
    from thinnka.cli.console import ConsoleOutput
    from thinnka.operations import resume_run

    session = open_command_session(values["env_file"], values["log_json"])
    output = ConsoleOutput(secrets=session.settings.secrets())
    sigterm_as_interrupt()
    run = resume_run(
        session,
        run_id,
        output,
        progress_url=progress_url,
        discord_webhook_url=discord_webhook_url,
    )
    return _exit_code(run)


@app.command("cancel")
@with_options(COMMON_OPTIONS)
def cancel_command(
    run_id: str = typer.Argument(..., help="The run to cancel."),
    **values: Any,
) -> int:
    """Cancel a run and terminate its pod.

    When another live process drives the run, it is asked to stop and cleans
    up itself; otherwise the cleanup runs here.
    """
    from thinnka.cli.console import ConsoleOutput
    from thinnka.operations import cancel_run

    session = open_command_session(values["env_file"], values["log_json"])
    output = ConsoleOutput(secrets=session.settings.secrets())
    result = cancel_run(session, run_id, output)
    if result.holder:
        typer.echo(f"Cancel requested; {result.holder} drives {run_id} and will clean up.")
        return 0
    outcome = result.run.outcome.value if result.run.outcome else result.run.state.value
    typer.echo(f"{run_id}: {result.run.state.value} ({outcome})")
    return 0 if result.run.state.is_final() else 1
