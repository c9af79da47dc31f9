"""Finishing what dead processes left behind: ``recover`` and ``reap``.

``recover`` (the cron entry point) drives every run that is not terminated
and whose lease has expired: a run with a pod is finished (a run in training
is re-attached and followed to the end); a run that failed is cleaned up; a
run that died before its pod existed is cancelled, not started unattended.

``reap`` terminates pods that carry this installation's ``THINNKA_OWNER`` but
that no live run owns. Pods of other installations, and pods thinnka did not
make, are never touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from thinnka.clients.runpod import Pod
from thinnka.errors import LeaseHeld, ThinnkaError
from thinnka.machine import RunState
from thinnka.records import Output

if TYPE_CHECKING:
    from thinnka.operations import Session

__all__ = ["ReapReport", "RecoverReport", "reap", "recover"]


@dataclass
class ReapReport:
    reaped: list[Pod] = field(default_factory=list)
    errors: list[tuple[Pod, str]] = field(default_factory=list)


@dataclass
class RecoverReport:
    driven: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    reaped: list[Pod] = field(default_factory=list)


def stray_pods(session: Session) -> list[Pod]:
    """Our pods whose run is terminated or unknown, and duplicates of a run's pod."""
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
            strays.append(pod)  # a pod whose run record is gone (another database?)
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
    for pod in stray_pods(session):
        if dry_run:
            report.reaped.append(pod)
            continue
        try:
            terminate_and_confirm(services.runpod, pod.id, time.monotonic() + 120)
            report.reaped.append(pod)
        except ThinnkaError as exc:
            report.errors.append((pod, exc.message))
    return report


# A run that died before its pod existed is not started again by cron: nobody
# is watching, and GPU time is money. It is cancelled (and any pod a create
# call may have left is terminated by cleanup).
_NOT_RESTARTED = frozenset({RunState.created, RunState.gated, RunState.estimated})


def recover(session: Session, output: Output) -> RecoverReport:
    report = RecoverReport()
    from thinnka.operations import drive, notifier_for

    for run in session.store.runs_needing_recovery():
        if run.state in _NOT_RESTARTED and not run.cancel_requested:
            session.store.add_event(
                run.id, "abandoned", "Its process died before a pod existed; recover cancels it."
            )
            session.store.request_cancel(run.id)
        notifier = notifier_for(session.settings, run.options, output, session.store)
        notifier.run_id = run.id
        try:
            finished = drive(session.runner(notifier), run.id)
            report.driven.append((run.id, finished.state.value))
        except LeaseHeld:
            continue  # someone took it between the query and now: theirs
        except ThinnkaError as exc:
            report.errors.append((run.id, exc.message))
    from thinnka.notify import deliver_backlog

    deliver_backlog(session.store, session.settings)  # what dead processes left undelivered
    reaped = reap(session)
    report.reaped = reaped.reaped
    report.errors += [(pod.id, error) for pod, error in reaped.errors]
    return report
