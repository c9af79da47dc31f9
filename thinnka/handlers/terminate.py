"""pushed → terminated and failed → terminated: the run gives up its pod.

Termination is confirmed: "not found" from the terminate call counts as gone
only once a successful read shows the pod absent. A crash between the create
call and recording the pod id is covered too: pods tagged with this run's id
are found on the account and terminated.
"""

from __future__ import annotations

import contextlib
import time
from typing import ClassVar

from thinnka.errors import NotFoundError, RemoteError
from thinnka.handlers.base import StepContext, StepResult
from thinnka.handlers.pod import close_shells
from thinnka.handlers.provision import find_run_pods
from thinnka.machine import RunState
from thinnka.store import RunRecord
from thinnka.store.models import utcnow

__all__ = ["TerminateHandler", "terminate_and_confirm"]


def terminate_and_confirm(runpod: object, pod_id: str, deadline: float) -> None:
    """Terminate ``pod_id`` and wait until reading it shows it gone."""
    with contextlib.suppress(NotFoundError):  # confirmed (or not) by the read below
        runpod.terminate_pod(pod_id)  # type: ignore[attr-defined]
    delay = 0.25
    while runpod.get_pod(pod_id) is not None:  # type: ignore[attr-defined]
        if time.monotonic() + delay > deadline:
            raise RemoteError(f"Pod {pod_id} still exists after terminate.", reason="terminate")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
        if delay >= 1.0:  # a 404 (or 204) that the read contradicts: ask again
            with contextlib.suppress(NotFoundError):
                runpod.terminate_pod(pod_id)  # type: ignore[attr-defined]


class TerminateHandler:
    """Serves both ``terminate`` (after a push) and ``cleanup`` (after a failure)."""

    trigger: ClassVar[str] = "terminate"

    def __init__(self, trigger: str = "terminate") -> None:
        self.trigger = trigger  # type: ignore[misc]

    def timeout_s(self, run: RunRecord) -> float:
        return 300.0

    def run(self, ctx: StepContext) -> StepResult:
        close_shells(ctx.services)
        run = ctx.run
        runpod = ctx.services.runpod
        pods = [run.pod_id] if run.pod_id else []
        if run.pod_name is not None:  # a create may have landed without its id recorded
            tagged = find_run_pods(runpod.list_pods(), run.id, ctx.services.owner)
            pods += [pod.id for pod in tagged if pod.id not in pods]
        for pod_id in pods:
            ctx.output.event("cleanup_start", f"Terminating pod {pod_id}.")
            terminate_and_confirm(runpod, pod_id, ctx.deadline)
            ctx.output.event("pod_terminated", f"Pod {pod_id} terminated.")
        updates: dict[str, object] = {}
        if run.pod_started_at is not None and run.cost_per_hr is not None:
            hours = (utcnow() - run.pod_started_at).total_seconds() / 3600
            updates["cost_usd"] = round(run.cost_per_hr * hours, 6)
        what = "no pod was created" if not pods else f"pod {', '.join(pods)} terminated"
        verb = "Succeeded" if run.state is RunState.pushed else "Cleaned up"
        return StepResult(message=f"{verb}: {what}.", updates=updates)
