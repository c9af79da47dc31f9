"""pushed → terminated and failed → terminated: the run gives up its pod.

Termination is confirmed: "not found" from the terminate call counts as gone
only once a successful read shows the pod absent. A crash between the create
call and recording the pod id is covered too: pods tagged with this run's id
are found on the account and terminated.

The pod's cost comes from its own clock, not from when this step happens to run
(a cleanup hours after a crash must not bill the downtime): right before the
terminate call the pod's uptime is read from the API, and the moment the
termination is confirmed is recorded at once (``RemoteFacts.termination``). A
re-entry keeps what the first pass recorded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from thinnka.clients.runpod import RunpodApi
from thinnka.errors import NotFoundError, PodHeld, RemoteError, ThinnkaError, TransientError
from thinnka.handlers.provision import find_run_pods
from thinnka.machine import RunState
from thinnka.pod.shell import close_shells
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord
from thinnka.store.models import utcnow
from thinnka.store.records import TerminationFacts

if TYPE_CHECKING:
    from thinnka.services import Services

__all__ = ["TerminateHandler", "terminate_and_confirm", "terminate_without_store"]


def terminate_and_confirm(runpod: RunpodApi, pod_id: str, deadline: float) -> None:
    """Terminate ``pod_id`` and wait until reading it shows it gone."""
    with contextlib.suppress(NotFoundError):  # confirmed (or not) by the read below
        runpod.terminate_pod(pod_id)
    delay = 0.25
    while runpod.get_pod(pod_id) is not None:
        if time.monotonic() + delay > deadline:
            raise RemoteError(f"Pod {pod_id} still exists after terminate.", reason="terminate")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
        if delay >= 1.0:  # a 404 (or 204) that the read contradicts: ask again
            with contextlib.suppress(NotFoundError):
                runpod.terminate_pod(pod_id)


# How long a terminate that Runpod keeps failing (5xx, dropped connections) is retried
# here, besides the client's own quick attempts: the run's watchdog grace, at least this.
# After that the run hands the pod to `recover` and to the pod's watchdog (which ends its
# own pod once nobody follows the run), instead of holding the process for minutes.
_MIN_TERMINATE_WINDOW_S = 30.0


def _terminate_with_retries(ctx: StepContext, runpod: RunpodApi, pod_id: str) -> None:
    """``terminate_and_confirm``, again with backoff while Runpod answers 5xx or drops the
    connection (refused keys are never retried), within the step's deadline."""
    window = max(ctx.run.options.watchdog_grace, _MIN_TERMINATE_WINDOW_S)
    until = min(ctx.deadline, time.monotonic() + window)
    delay = 2.0
    while True:
        try:
            terminate_and_confirm(runpod, pod_id, ctx.deadline)
            return
        except TransientError as exc:
            if time.monotonic() + delay > until:
                raise
            ctx.output.event(
                "terminate_retry",
                f"Terminating pod {pod_id} failed ({exc.message}); retrying in {delay:.0f} s.",
            )
            time.sleep(delay)
            delay = min(delay * 2, 20.0)


def terminate_without_store(
    services: Services,
    run_id: str,
    known: Iterable[str],
    seconds: float = 120.0,
    *,
    clusters: Iterable[str] = (),
    cluster_name: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Terminate a run's pods when nothing can be recorded (the database failed).

    ``known`` are the pod ids this process holds in memory; pods tagged with the run's
    id are added where the account can be read (a create whose answer was lost). Bounded
    by ``seconds`` overall (the client retries each call a bounded number of times).
    A ``--nodes`` run's cluster (``clusters`` in memory, else found by ``cluster_name``) is
    deleted whole: its member pods cannot be terminated one by one (409).
    Returns (terminated, {pod id: why it is left}).
    """
    deadline = time.monotonic() + seconds
    pods = list(dict.fromkeys(known))
    close_shells(services)
    done: list[str] = []
    left: dict[str, str] = {}
    if cluster_name is not None or clusters:
        members = _delete_clusters(services, list(clusters), cluster_name, deadline, left)
        done += [pod for pod in members if pod not in left]
        pods = [pod for pod in pods if pod not in members]
    with contextlib.suppress(ThinnkaError):  # the installation id may need the database
        tagged = find_run_pods(services.runpod.list_pods(), run_id, services.owner)
        pods += [pod.id for pod in tagged if pod.id not in pods and pod.id not in done]
    for pod_id in pods:
        try:
            terminate_and_confirm(services.runpod, pod_id, deadline)
        except ThinnkaError as exc:
            left[pod_id] = exc.message
        else:
            done.append(pod_id)
    return done, left


def _delete_clusters(
    services: Services,
    known: list[str],
    name: str | None,
    deadline: float,
    left: dict[str, str],
) -> list[str]:
    """Delete the run's clusters; their member pod ids (a member left gets why in ``left``)."""
    from thinnka.handlers.cluster import delete_and_confirm
    from thinnka.preflight import cluster_api

    members: list[str] = []
    try:
        api = cluster_api(services)
        ids = list(dict.fromkeys(known))
        if name is not None:  # a create whose answer was lost: the name holds the run id
            with contextlib.suppress(ThinnkaError):
                ids += [c.id for c in api.list_clusters() if c.name == name and c.id not in ids]
    except ThinnkaError:
        return members
    for cluster_id in ids:
        nodes: list[str] = []
        with contextlib.suppress(ThinnkaError):
            nodes = [node.pod.id for node in api.nodes(cluster_id)]
        members += nodes
        try:
            delete_and_confirm(api, cluster_id, deadline)
        except ThinnkaError as exc:
            left.update(dict.fromkeys(nodes, f"cluster {cluster_id}: {exc.message}"))
    return members


class TerminateHandler:
    """Serves both ``terminate`` (after a push) and ``cleanup`` (after a failure)."""

    def __init__(self, trigger: str = "terminate") -> None:
        self.trigger = trigger

    def timeout_s(self, run: RunRecord) -> float:
        return 300.0

    def run(self, ctx: StepContext) -> StepResult:
        close_shells(ctx.services)
        run = ctx.run
        until = run.remote.push_hold_until
        if (
            self.trigger == "cleanup"
            and until is not None
            and run.pod_id is not None
            and not run.cancel_requested  # `thinnka cancel` gives the model up at once
            and utcnow() < until
        ):
            # The pod holds a trained model whose push failed: terminating it now would
            # delete the weights. Its watchdog ends it when the hold ends, `recover` then.
            raise PodHeld(
                f"Pod {run.pod_id} is kept with the unpushed model until "
                f"{until.strftime('%Y-%m-%d %H:%M:%S')} UTC (see the error for the command "
                f"that pushes it); then its watchdog or `thinnka recover` terminates it; "
                f"`thinnka cancel {run.id}` terminates it now."
            )
        runpod = ctx.services.runpod
        if run.cluster_id is not None or run.options.multi_node:
            return self._cluster(ctx, runpod)
        pods = [run.pod_id] if run.pod_id else []
        if run.pod_name is not None:  # a create may have landed without its id recorded
            tagged = find_run_pods(runpod.list_pods(), run.id, ctx.services.owner)
            pods += [pod.id for pod in tagged if pod.id not in pods]
        for pod_id in pods:
            ctx.output.event("cleanup_start", f"Terminating pod {pod_id}.")
            existed = _note_uptime(ctx, runpod, pod_id) if pod_id == run.pod_id else True
            _terminate_with_retries(ctx, runpod, pod_id)
            if pod_id == run.pod_id:
                _note_confirmed(ctx, existed=existed)
            ctx.output.event("pod_terminated", f"Pod {pod_id} terminated.")
        updates: dict[str, object] = {}
        if run.pod_id is not None:
            seconds = billed_seconds(ctx.run, ctx.run.remote.termination)
            if seconds is not None and run.cost_per_hr is not None:
                # Pods lost before this one (restarts) are part of the run's cost.
                earlier = ctx.run.remote.restarts.earlier_cost
                updates["cost_usd"] = round(earlier + run.cost_per_hr * seconds / 3600, 6)
        what = "no pod was created" if not pods else f"pod {', '.join(pods)} terminated"
        verb = "Succeeded" if run.state is RunState.pushed else "Cleaned up"
        return StepResult(message=f"{verb}: {what}.", updates=updates)

    def _cluster(self, ctx: StepContext, runpod: RunpodApi) -> StepResult:
        """--nodes: every node's logs home, then the whole cluster deleted and confirmed
        (Runpod refuses to delete its member pods one by one). Its cost is the cluster's
        price (all nodes) for rank 0's uptime: the nodes are created and deleted together."""
        from thinnka.handlers.cluster import delete_cluster, keep_node_logs, run_cluster_id

        run = ctx.run
        cluster_id = run_cluster_id(ctx)
        verb = "Succeeded" if run.state is RunState.pushed else "Cleaned up"
        if cluster_id is None:
            return StepResult(message=f"{verb}: no cluster was created.")
        kept = keep_node_logs(ctx)
        close_shells(ctx.services)
        existed = _note_uptime(ctx, runpod, run.pod_id) if run.pod_id else True
        ctx.output.event("cleanup_start", f"Deleting Instant Cluster {cluster_id}.")
        window = max(run.options.watchdog_grace, _MIN_TERMINATE_WINDOW_S)
        delete_cluster(ctx, cluster_id, min(ctx.deadline, time.monotonic() + window))
        if run.pod_id is not None:
            _note_confirmed(ctx, existed=existed)
        ctx.output.event("pod_terminated", f"Instant Cluster {cluster_id} deleted.")
        updates: dict[str, object] = {}
        seconds = billed_seconds(ctx.run, ctx.run.remote.termination)
        if seconds is not None and run.cost_per_hr is not None:
            updates["cost_usd"] = round(run.cost_per_hr * seconds / 3600, 6)
        logs = f"; node logs kept: {', '.join(kept)}" if kept else ""
        return StepResult(message=f"{verb}: cluster {cluster_id} deleted{logs}.", updates=updates)


def _save_termination(ctx: StepContext, facts: TerminationFacts) -> None:
    ctx.save(remote=replace(ctx.run.remote, termination=facts))


def _note_uptime(ctx: StepContext, runpod: RunpodApi, pod_id: str) -> bool:
    """Record the pod's uptime as the API reports it, with when it was read; False if gone."""
    pod = runpod.get_pod(pod_id)
    if pod is None:
        return False  # a re-entry after the terminate landed: keep what was recorded
    if pod.uptime_seconds is not None:  # None while it has not booted
        facts = replace(
            ctx.run.remote.termination, seen_at=utcnow(), uptime_s=float(pod.uptime_seconds)
        )
        _save_termination(ctx, facts)
    return True


def _note_confirmed(ctx: StepContext, *, existed: bool) -> None:
    """The moment the pod was confirmed gone: recorded once, kept by every re-entry.

    When this pass found the pod already gone (the terminate of a pass that then
    crashed), the last moment it was seen up is the better estimate than now.
    """
    facts = ctx.run.remote.termination
    if facts.confirmed_at is not None:
        return
    confirmed = utcnow() if existed or facts.seen_at is None else facts.seen_at
    _save_termination(ctx, replace(facts, confirmed_at=confirmed))


def billed_seconds(run: RunRecord, facts: TerminationFacts) -> float | None:
    """How long the pod ran: its uptime when last read, plus the time until it was gone."""
    if facts.confirmed_at is None:
        return None
    if facts.uptime_s is not None and facts.seen_at is not None:
        tail = (facts.confirmed_at - facts.seen_at).total_seconds()
        return facts.uptime_s + max(0.0, tail)
    created = run.remote.restarts.pod_at or run.pod_started_at  # this pod's creation
    if created is not None:  # the API never showed an uptime (never booted)
        return max(0.0, (facts.confirmed_at - created).total_seconds())
    return None
