"""The library surface the CLI calls: one function per command.

Each function takes resolved settings and plain values and returns records;
the CLI only parses, calls and prints (the sqlite-utils split).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thinnka.errors import LeaseHeld, ThinnkaError
from thinnka.handlers.base import Handler
from thinnka.lease import owner_host
from thinnka.machine import RunState
from thinnka.options import RunOptions, validate_for_settings, validate_sink_urls
from thinnka.reasons import Reason
from thinnka.runner import Runner
from thinnka.services import LiveServices, Services
from thinnka.settings import Settings
from thinnka.step import Output
from thinnka.store import RunRecord, Store, open_store

if TYPE_CHECKING:
    from thinnka.clients.runpod import GpuOffer
    from thinnka.events.notify import Notifier
    from thinnka.preflight import Plan, RunChecks

__all__ = [
    "CancelResult",
    "Session",
    "cancel_run",
    "gpu_catalog",
    "open_session",
    "plan_run",
    "resume_run",
    "retry_class",
    "run_summary",
    "start_run",
]


@dataclass
class Session:
    """What every command works with: settings, the store, how to reach services."""

    settings: Settings
    store: Store
    services: Services | None = None
    handlers: Mapping[str, Handler] | None = None

    def get_services(self) -> Services:
        if self.services is None:
            self.services = LiveServices(self.settings, self.store)
        return self.services

    def runner(self, output: Output) -> Runner:
        if self.handlers is None:
            from thinnka.handlers import default_handlers

            self.handlers = default_handlers()
        return Runner(
            self.store,
            self.settings,
            handlers=self.handlers,
            output=output,
            services=self.get_services(),
        )


def open_session(settings: Settings, *, read_only: bool = False) -> Session:
    """``read_only``: for commands that only read (see ``thinnka.store.db.open_engine``)."""
    return Session(settings=settings, store=open_store(settings, read_only=read_only))


def notifier_for(
    settings: Settings,
    options: RunOptions,
    output: Output,
    store: Store | None = None,
    *,
    deliver: bool = True,
) -> Notifier:
    """The terminal output, plus the events outbox and its webhook/Discord delivery
    (``deliver=False``: the outbox only; someone else delivers it)."""
    from thinnka.events.notify import (
        DEFAULT_PROGRESS_INTERVAL_S,
        Notifier,
        logging_first_step,
        logging_steps,
    )
    from thinnka.events.sinks import sinks_for, unreachable_flag_sinks

    for name in unreachable_flag_sinks(settings, options):
        flag = "--progress-url" if name == "webhook" else "--discord-webhook-url"
        setting = "PROGRESS_WEBHOOK_URL" if name == "webhook" else "DISCORD_WEBHOOK_URL"
        output.event(
            "warning",
            f"This run's {name} URL was given by flag and is not stored (it is a secret): "
            f"its events wait until it is given again ({flag} on resume, or {setting}).",
        )
    interval = settings.extra.get("THINNKA_PROGRESS_INTERVAL_S")
    return Notifier(
        output,
        store=store,
        sinks=sinks_for(settings, options),
        repo_id=options.repo_id,
        secrets=settings.secrets(),
        log_path=settings.remote_log,
        logging=logging_steps(options),
        first_step_logged=logging_first_step(options.overrides),
        hub_endpoint=settings.hf_endpoint,
        progress_interval_s=float(interval) if interval else DEFAULT_PROGRESS_INTERVAL_S,
        deliver=deliver,
    )


def start_run(
    session: Session, options: RunOptions, output: Output, *, checks: RunChecks | None = None
) -> tuple[str, Runner]:
    """Validate everything, then create the run (leased to the returned runner).

    ``checks``: ``begin_run_checks`` already called for these options (by ``run``, before it
    opened the database, with the session's services); ``options`` are then not used.
    """
    if checks is None:
        from thinnka.preflight import begin_run_checks

        checks = begin_run_checks(session.get_services(), options)
    options = checks.options
    if session.handlers is None:  # their imports overlap the Hub's and Runpod's answers
        from thinnka.handlers import default_handlers

        session.handlers = default_handlers()
    checked = checks.checked()  # a refused choice: exit 2, no row
    gate = checked.gate if checked else None
    data = checks.data
    notifier = notifier_for(session.settings, options, output, session.store)
    runner = session.runner(notifier)
    # One live run per target repo (exit 2, nothing created): a second one's pushes would
    # overwrite the first's files. A default target is known only from the Hub (the token's
    # user); when it could not be asked, the gate step names the target unchecked, and the
    # push check's marker (this run's id) still keeps another run's push from counting.
    hub_model_id = gate.hub_model_id if gate else options.hub_model_id
    plan: dict[str, Any] = {"gate": gate.to_json()} if gate else {}
    if checked:  # the estimate step chooses from this catalog read rather than a second one
        from thinnka.preflight import kept_choice_json

        plan["kept_choice"] = kept_choice_json(checked.choice, checked.asked_at)
    if data:  # their files and hashes: the upload skips what the pod holds already
        plan["data"] = [item.to_json() for item in data]
    run = runner.create(options, plan=plan or None, hub_model_id=hub_model_id)
    notifier.run_id = run.id
    notifier.event("start", f"Run {run.id} created.")
    for warning in (w for item in data for w in item.warnings):
        notifier.event("warning", warning)  # a large file: a Hub data set would do better
    return run.id, runner


def drive(
    runner: Runner,
    run_id: str,
    *,
    detach: bool = False,
    wait_for_lease: bool = False,
    abandon: Callable[[RunRecord], ThinnkaError | None] | None = None,
    follow_restart: bool = True,
) -> RunRecord:
    """Drive a run, say how it ended, then flush its notifications (bounded)."""
    try:
        run = runner.drive(
            run_id,
            stop_at=RunState.training if detach else None,
            wait_for_lease=wait_for_lease,
            abandon=abandon,
            follow_restart=follow_restart,
        )
        _report_end(run, runner.output)
        return run
    finally:
        close = getattr(runner.output, "close", None)
        if close is not None:
            close()


def _report_end(run: RunRecord, output: Output) -> None:
    if run.state is RunState.terminated and run.outcome is not None:
        event = "done" if run.outcome.value == "succeeded" else run.outcome.value
        output.event(event, f"Run {run.id} {run.outcome.value}; pod cost ${run.cost_usd:.4f}.")
    elif run.state is RunState.training:
        output.event("detached", f"Training runs on the pod; `thinnka resume {run.id}` follows it.")
    else:
        output.event("stopped", f"Run {run.id} stopped in state {run.state.value}.")


def resume_run(
    session: Session,
    run_id: str,
    output: Output,
    *,
    progress_url: str | None = None,
    discord_webhook_url: str | None = None,
) -> RunRecord:
    """Continue ``run_id``. The sink URLs a run was started with by flag are never
    stored (they are secrets): ``progress_url``/``discord_webhook_url`` give them again."""
    run = session.store.get(run_id)
    given = validate_sink_urls(
        {"progress_url": progress_url, "discord_webhook_url": discord_webhook_url}
    )
    options = run.options
    if given:
        options = dataclasses.replace(
            options,
            progress_url=given.get("progress_url", options.progress_url),
            discord_webhook_url=given.get("discord_webhook_url", options.discord_webhook_url),
        )
    notifier = notifier_for(session.settings, options, output, session.store)
    notifier.run_id = run.id
    # Another host's holder may have died unseen: resume waits out its lease.
    return drive(session.runner(notifier), run.id, wait_for_lease=True)


@dataclass(frozen=True)
class CancelResult:
    run: RunRecord
    driven_here: bool
    holder: str | None


def cancel_run(session: Session, run_id: str, output: Output) -> CancelResult:
    """Ask a run to stop; drive its cleanup here unless a live process drives it."""
    run = session.store.get(run_id)
    if run.state.is_final():
        return CancelResult(run, driven_here=False, holder=None)
    session.store.request_cancel(run_id)
    notifier = notifier_for(session.settings, run.options, output, session.store)
    notifier.run_id = run.id
    try:
        run = drive(session.runner(notifier), run_id)
    except LeaseHeld as held:
        return CancelResult(session.store.get(run_id), driven_here=False, holder=held.holder)
    return CancelResult(run, driven_here=True, holder=None)


def run_summary(store: Store, run: RunRecord, *, events: bool) -> dict[str, Any]:
    """The JSON shape of ``show --json`` (and, without events, of ``ls --json``)."""
    data: dict[str, Any] = {
        "id": run.id,
        "state": run.state.value,
        "outcome": run.outcome.value if run.outcome else None,
        "repo_id": run.repo_id,
        "hub_model_id": run.hub_model_id,
        "trainer": run.options.trainer,
        "mode": run.options.mode,
        "pod_id": run.pod_id,
        "pod_name": run.pod_name,
        "gpu_type": run.gpu_type,
        "gpu_count": run.gpu_count,
        "cost_per_hr": run.cost_per_hr,
        "cost_usd": round(run.cost_usd, 6),
        # --nodes: the Instant Cluster and its nodes by rank (rank 0 is pod_id).
        "cluster": (
            {
                "id": run.cluster_id,
                "nodes": [
                    {"rank": n.get("rank"), "pod_id": n.get("pod_id")} for n in run.cluster_nodes
                ],
            }
            if run.cluster_id
            else None
        ),
        "error": (
            {
                "message": run.error_message,
                "reason": run.error_reason,
                "retry": retry_class(run.error_reason),
            }
            if run.error_message
            else None
        ),
        "lease_owner": run.lease_owner if run.lease_live() else None,
        # Which machine drives it: on a shared database, often not this one.
        "lease_host": owner_host(run.lease_owner) if run.lease_live() and run.lease_owner else None,
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
    }
    if events:
        data["options"] = run.options.to_json()
        data["plan"] = run.plan
        data["remote"] = run.remote.to_json()
        data["events"] = [event.to_json() for event in store.events(run.id)]
        data["data"] = data_summary(run.plan)
        data["scores"] = [score.to_json() for score in store.scores.of(run.id)]
        data["pods"] = run_pods(run)
    return data


def data_summary(plan: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The run's local data sets as ``show`` gives them: where, which content, how much."""
    keys = ("role", "path", "sha256", "bytes", "rows", "columns", "format")
    found = (plan or {}).get("data") or []
    return [{key: item.get(key) for key in keys} for item in found]


def run_pods(run: RunRecord) -> list[dict[str, Any]]:
    """Every pod of the run, oldest first, with its cost: the ones lost under the training
    (each replaced by a new pod, ``thinnka.handlers.restart``; cost estimated), then the
    current one (its share of ``cost_usd``)."""
    restarts = run.remote.restarts
    pods = [pod.to_json() for pod in restarts.pods]
    if run.pod_id is not None:
        started = restarts.pod_at or run.pod_started_at
        pods.append(
            {
                "pod_id": run.pod_id,
                "gpu_type": run.gpu_type,
                "cost_per_hr": run.cost_per_hr,
                "started_at": started.isoformat() if started else None,
                "ended_at": None,
                "cost_usd": round(max(run.cost_usd - restarts.earlier_cost, 0.0), 6),
                "why": "current",
            }
        )
    return pods


def retry_class(reason: str | None) -> str | None:
    """What retrying a run that failed with ``reason`` may do (None: an unknown old code)."""
    try:
        return str(Reason(reason).retry) if reason else None
    except ValueError:
        return None


def cost_report(session: Session, run: RunRecord) -> dict[str, Any]:
    """The run's cost for ``show``: what Runpod billed, once the transport has billing
    records for the pod (REST v2), else the estimate (price × the pod's time), labelled."""
    from thinnka.errors import ThinnkaError
    from thinnka.store.models import utcnow

    if run.pod_id and session.settings.runpod_api_key:
        try:
            if run.cluster_id is not None:  # every node: the cluster's billing records
                from thinnka.preflight import cluster_api

                billed = cluster_api(session.get_services()).billed_cost(run.cluster_id)
            else:
                billed = session.get_services().runpod.billed_cost(run.pod_id)
        except ThinnkaError:
            billed = None  # offline or refused: the estimate still says something
        if billed is not None:
            # Pods lost before this one (restarts): billed where Runpod has them, else
            # their estimate.
            for pod in run.remote.restarts.pods:
                try:
                    earlier = session.get_services().runpod.billed_cost(pod.pod_id)
                except ThinnkaError:
                    earlier = None
                billed += pod.cost_usd if earlier is None else earlier
            return {"cost_usd": round(billed, 6), "cost_basis": "billed"}
    estimate = run.cost_usd
    if not run.state.is_final() and run.pod_started_at and run.cost_per_hr:
        estimate = run.cost_per_hr * (utcnow() - run.pod_started_at).total_seconds() / 3600
    return {"cost_usd": round(estimate, 6), "cost_basis": "estimate"}


def plan_run(session: Session, options: RunOptions) -> Plan:
    """``thinnka plan``: gate, estimate, choose GPUs and render; nothing is created."""
    from thinnka.preflight import make_plan

    options = validate_for_settings(options, session.settings)  # the rules `run` applies
    return make_plan(session.get_services(), options)


def gpu_catalog(session: Session, gpu_count: int) -> list[GpuOffer]:
    """Runpod's GPU types with price and stock for ``gpu_count`` GPUs, cheapest first."""
    offers = session.get_services().runpod.gpu_offers(gpu_count)
    return sorted(
        offers,
        key=lambda o: (o.price_per_hour is None, o.price_per_hour or 0.0, -o.memory_gb),
    )
