"""Finishing what dead processes left behind: ``recover`` and ``reap``.

``recover`` (the cron entry point) makes one bounded pass over every run that
is not terminated and whose lease has expired. It never follows a training to
its end: a training still running gets its cost recorded and is left to the
pod's watchdog; a training that ended (or whose pod is gone, or that is past
its bound) is finished: push verified, pod terminated, outcome recorded. A run
that failed is cleaned up; a run whose process died before training is
cancelled (its pod terminated), not continued unattended, unless its pod is
gone already (its watchdog ended it between jobs): that run fails with
``pod_lost``. A holder that stopped because the database failed left a stop note
(``thinnka.lease``): that run fails with what the note says.

``reap`` terminates pods that carry this installation's ``THINNKA_OWNER`` but
that no live run owns. Pods of other installations, and pods thinnka did not
make, are never touched; a pod of a run this database does not know (a copy or
a restore of it may drive that run) only once it is past its own bound.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from thinnka.clients.runpod import Pod
from thinnka.errors import Cancelled, LeaseHeld, ThinnkaError
from thinnka.lease import owner_is_dead, take_lease
from thinnka.machine import RunState
from thinnka.reasons import Reason
from thinnka.step import Output

if TYPE_CHECKING:
    from thinnka.operations import Session
    from thinnka.store import RunRecord

__all__ = ["ReapReport", "RecoverReport", "reap", "recover", "unknown_run_wait"]


@dataclass
class ReapReport:
    reaped: list[Pod] = field(default_factory=list)
    errors: list[tuple[Pod, str]] = field(default_factory=list)
    kept: list[tuple[Pod, str]] = field(default_factory=list)  # ours, but maybe alive elsewhere


# A pod of a run this database does not know may be driven by a copy or a restore of it
# (same installation id, so same THINNKA_OWNER). No run outlives its own bound (the
# orchestrator and the pod's watchdog both stop it at --max-hours), so such a pod is
# reaped only once its uptime passed that bound (THINNKA_MAX_HOURS on the pod) by this
# margin; a pod without that tag (made by an older thinnka) by the highest --max-hours.
UNKNOWN_RUN_MARGIN_S = 15 * 60.0
_UNTAGGED_MAX_HOURS = 720.0


def unknown_run_wait(pod: Pod) -> float | None:
    """Seconds until a pod of an unknown run may be reaped (None: now)."""
    try:
        hours = float(pod.env.get("THINNKA_MAX_HOURS", ""))
    except ValueError:
        hours = _UNTAGGED_MAX_HOURS
    if not 0 < hours <= _UNTAGGED_MAX_HOURS:  # nan, or a tag this thinnka never writes
        hours = _UNTAGGED_MAX_HOURS
    if pod.uptime_seconds is None:  # not booted (or stopped): its age is unknown
        return hours * 3600 + UNKNOWN_RUN_MARGIN_S
    left = hours * 3600 + UNKNOWN_RUN_MARGIN_S - pod.uptime_seconds
    return left if left > 0 else None


@dataclass
class RecoverReport:
    runs: list[RunAction] = field(default_factory=list)
    driven: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    reaped: list[Pod] = field(default_factory=list)


def stray_pods(session: Session, kept: list[tuple[Pod, str]] | None = None) -> list[Pod]:
    """Our pods whose run is terminated, duplicates of a run's pod, and pods of runs this
    database does not know once they are past their own bound (see ``unknown_run_wait``);
    the younger ones of unknown runs go to ``kept`` with the reason."""
    from thinnka.errors import RunNotFound

    services = session.get_services()
    owner = services.owner
    strays = []
    for pod in services.runpod.list_pods():
        if pod.env.get("THINNKA_OWNER") != owner:
            continue  # another installation's pod, or not thinnka's at all
        run_id = pod.env.get("THINNKA_RUN_ID", "")
        try:
            run = session.store.get(run_id)
        except RunNotFound:
            wait = unknown_run_wait(pod)
            if wait is None:
                strays.append(pod)  # past its own bound: nobody can still be driving it
            elif kept is not None:
                kept.append((pod, _unknown_run_note(run_id, wait)))
            continue
        # A live (or recoverable) run owns its recorded pod; a second pod of the
        # same run is a duplicate, and a terminated run owns nothing.
        if run.state.is_final() or (run.pod_id is not None and run.pod_id != pod.id):
            strays.append(pod)
    return strays


def reap(session: Session, *, dry_run: bool = False) -> ReapReport:
    from thinnka.handlers.terminate import terminate_and_confirm

    report = ReapReport()
    services = session.get_services()
    for pod in stray_pods(session, report.kept):
        if dry_run:
            report.reaped.append(pod)
            continue
        try:
            terminate_and_confirm(services.runpod, pod.id, time.monotonic() + 120)
            report.reaped.append(pod)
        except ThinnkaError as exc:
            report.errors.append((pod, exc.message))
    _reap_clusters(session, report, dry_run=dry_run)
    return report


def _reap_clusters(session: Session, report: ReapReport, *, dry_run: bool) -> None:
    """Instant Clusters by the pods' rules: ours (the primary's ``THINNKA_OWNER``) and owned
    by no live run, or of an unknown run past its own bound. Their member pods are not in
    the pod list and cannot be deleted alone, so the whole cluster is deleted; its nodes
    are what the report lists. REST v2 only (GraphQL has no clusters)."""
    from thinnka.errors import NotFoundError, RunNotFound
    from thinnka.preflight import cluster_api

    services = session.get_services()
    if services.settings.runpod_api == "graphql":
        return
    clusters = cluster_api(services)
    for cluster in clusters.list_clusters():
        nodes = clusters.nodes(cluster.id)
        if not nodes or nodes[0].pod.env.get("THINNKA_OWNER") != services.owner:
            continue  # another installation's cluster, or not thinnka's at all
        primary, pods = nodes[0].pod, [n.pod for n in nodes]
        run_id = primary.env.get("THINNKA_RUN_ID", "")
        try:
            run = session.store.get(run_id)
        except RunNotFound:
            wait = unknown_run_wait(primary)
            if wait is not None:
                report.kept += [(pod, _unknown_run_note(run_id, wait)) for pod in pods]
                continue
        else:
            if not run.state.is_final() and run.cluster_id in (None, cluster.id):
                continue  # the run's own cluster (or one it may still record)
        if not dry_run:
            try:
                deadline = time.monotonic() + 120
                while clusters.get_cluster(cluster.id) is not None:
                    with contextlib.suppress(NotFoundError):
                        clusters.delete_cluster(cluster.id)
                    if time.monotonic() > deadline:
                        raise ThinnkaError(f"Cluster {cluster.id} still exists after its delete.")
                    time.sleep(0.5)
            except ThinnkaError as exc:
                report.errors += [(pod, exc.message) for pod in pods]
                continue
        report.reaped += pods


def _unknown_run_note(run_id: str, wait: float) -> str:
    return (
        f"run {run_id or '?'} is not in this database; another copy of it (same installation "
        f"id) may drive it, so it is left until its own bound has passed (in {wait / 3600:.1f} h)"
    )


# Runs whose process died before training are not continued by cron: nobody is
# watching, and GPU time is money. They are cancelled (cleanup terminates any
# pod, including one a create call may have left).
_NOT_CONTINUED = frozenset(
    {
        RunState.created,
        RunState.gated,
        RunState.estimated,
        RunState.provisioned,
        RunState.connected,
        RunState.installed,
    }
)
_PROBE_S = 20.0  # one run's look at its pod (API read, SSH connect, two file reads)


@dataclass
class RunAction:
    """What ``recover`` did with one run (``--json`` prints these)."""

    run_id: str
    state_before: str
    action: str  # driven, cancelled, left_running, error
    state: str
    outcome: str | None = None
    reason: str | None = None
    message: str = ""

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def recover(session: Session, output: Output) -> RecoverReport:
    """One bounded pass over every run whose lease expired, then reap."""
    report = RecoverReport()
    for run in _orphaned_runs(session):
        try:
            action = _recover_one(session, run, output)
        except LeaseHeld:
            continue  # someone took it between the query and now: theirs
        except ThinnkaError as exc:
            report.errors.append((run.id, exc.message))
            action = RunAction(
                run.id, run.state.value, "error", run.state.value, message=exc.message
            )
        report.runs.append(action)
        if action.action in ("driven", "cancelled"):
            report.driven.append((run.id, action.state))
    reaped = reap(session)
    report.reaped = reaped.reaped
    report.errors += [(pod.id, error) for pod, error in reaped.errors]
    from thinnka.events.notify import deliver_backlog

    # Last, and bounded overall: pods cost money, events only wait. What dead processes
    # (and the runs above) left undelivered goes out now or stays for the next pass.
    deliver_backlog(session.store, session.settings)
    return report


def _orphaned_runs(session: Session) -> list[RunRecord]:
    """Runs not terminated whose lease expired, or whose holder died on this host
    (a killed process leaves its lease until expiry; cron need not wait for it)."""
    return [
        run
        for run in session.store.list_runs()
        if not run.lease_live() or (run.lease_owner and owner_is_dead(run.lease_owner))
    ]


def _recover_one(session: Session, run: RunRecord, output: Output) -> RunAction:
    from thinnka.operations import drive, notifier_for

    before = run.state.value
    action = "driven"
    abandon: Callable[[RunRecord], ThinnkaError | None] | None = None
    # A holder stopped by the database said why: the run fails with that, it is not
    # "cancelled", which nobody asked for.
    stopped = _stopped_by_the_database(session, run)
    if stopped is not None:
        abandon = _stop_with(stopped)
    elif _died_before_training(run) and not _pod_gone(session, run):
        abandon = _abandon_before_training
        action = "cancelled"
    elif run.state is RunState.training and not run.cancel_requested:
        verdict = _probe_training(session, run, output)
        if verdict == "running":
            current = session.store.get(run.id)
            message = f"Training runs on (${current.cost_usd:.4f} so far); its watchdog guards it."
            return RunAction(run.id, before, "left_running", current.state.value, message=message)
    # Its events go to the outbox only; the backlog is delivered once at the end, so a
    # slow sink costs the pass one bounded wait, not one per run.
    notifier = notifier_for(session.settings, run.options, output, session.store, deliver=False)
    notifier.run_id = run.id
    # A pod lost under the training is replaced and the training restarted (detached, from
    # its last checkpoint), but cron never follows it: the next pass, or `resume`, does.
    finished = drive(session.runner(notifier), run.id, abandon=abandon, follow_restart=False)
    return RunAction(
        run.id,
        before,
        action,
        finished.state.value,
        finished.outcome.value if finished.outcome else None,
        finished.error_reason,
        finished.error_message or "",
    )


def _died_before_training(run: RunRecord) -> bool:
    """Its holder died in a state no process continues (before training), and nobody
    asked to cancel it (a cancel says so itself): ``recover`` stops such a run."""
    return run.state in _NOT_CONTINUED and not run.cancel_requested


def _abandon_before_training(run: RunRecord) -> ThinnkaError | None:
    """The error that stops a run whose process died before training, asked once this
    ``recover`` holds the lease: the run as it is then (another ``recover`` may have
    finished it meanwhile, or someone asked to cancel it, which says so itself)."""
    if not _died_before_training(run):
        return None
    return Cancelled(
        f"Its process died in state {run.state.value}, before training; "
        "`thinnka recover` stopped the run and cleans up its pod.",
        reason=Reason.process_died,
    )


def _stopped_by_the_database(session: Session, run: RunRecord) -> ThinnkaError | None:
    """Why the holder of a run that died before training stopped, when it could not
    record it itself: the database had failed (its stop note says so, and which pods
    it terminated)."""
    from thinnka.lease import read_stop_note
    from thinnka.reasons import Reason

    note = read_stop_note(session.settings.state_dir, run.id)
    if note is None or not _died_before_training(run):
        return None
    said = [
        f"The process driving the run stopped: {note.get('why') or 'the database was unavailable'}"
    ]
    if note.get("terminated"):
        said.append(f"it terminated pod {', '.join(map(str, note['terminated']))} first")
    for pod_id, why in dict(note.get("left") or {}).items():
        said.append(f"pod {pod_id} was left ({why})")
    return ThinnkaError("; ".join(said) + ". Recorded by `thinnka recover`.",
                        reason=Reason.database)  # fmt: skip


def _stop_with(error: ThinnkaError) -> Callable[[RunRecord], ThinnkaError | None]:
    """``abandon`` for a run whose holder stopped when the database failed: asked once the
    lease is held, so a run another process finished meanwhile records nothing."""

    def abandon(current: RunRecord) -> ThinnkaError | None:
        return error if _died_before_training(current) else None

    return abandon


def _pod_gone(session: Session, run: RunRecord) -> bool:
    """The run has a pod and it is gone (one API read). Then there is nothing to cancel:
    its watchdog ended it, idle between jobs with nobody following, or it was lost; the
    next step, driven as usual, records that (``pod_lost``) and cleans up."""
    from thinnka.pod.jobs import pod_gone

    return pod_gone(session.get_services().runpod, run.pod_id)


def _probe_training(session: Session, run: RunRecord, output: Output) -> str:
    """ "running" when the training goes on (progress and cost recorded), else "ended"
    (the job ended, the pod is gone, or the run is past its bound): then it is driven."""
    from thinnka.errors import RemoteError
    from thinnka.options.limits import run_limit
    from thinnka.pod.jobs import job_exit_code, pod_is_gone
    from thinnka.pod.shell import close_shells, open_shell
    from thinnka.pod.watchdog import touch_heartbeat
    from thinnka.step import StepContext
    from thinnka.store.models import utcnow

    runner = session.runner(output)
    store, owner = session.store, runner.owner
    run = take_lease(store, run.id, owner, seconds=60)
    try:
        ctx = StepContext(
            run=run,
            settings=session.settings,
            services=session.get_services(),
            output=output,
            deadline=time.monotonic() + _PROBE_S,
            record=lambda facts: store.record(run.id, owner=owner, updates=facts),
            note=lambda kind, message: store.add_event(run.id, kind, message),
            check_cancelled=lambda: None,
        )
        limit = run_limit(run.options, run.pod_started_at, run.cost_per_hr)
        if (limit is not None and limit.passed(utcnow())) or pod_is_gone(ctx):
            return "ended"
        run_dir = run.remote.run_dir
        if not run_dir:
            return "ended"
        try:
            shell = open_shell(ctx, timeout=_PROBE_S)
            touch_heartbeat(shell, run_dir)  # recover follows the run too, if briefly
            ended = job_exit_code(shell, run_dir, "train") is not None
        except RemoteError:
            return "ended"  # the push step sorts out what happened (pod lost, job died)
        finally:
            close_shells(ctx.services)
        if ended:
            return "ended"
        if run.pod_started_at is not None and run.cost_per_hr is not None:
            hours = (utcnow() - run.pod_started_at).total_seconds() / 3600
            ctx.save(cost_usd=round(run.cost_per_hr * hours, 6))
        store.add_event(run.id, "recover_checked", "Training still running; left to its watchdog.")
        return "running"
    finally:
        store.release_lease(run.id, owner)
