"""The pod's watchdog, from the orchestrator's side: arming it and keeping it quiet.

``recipes/scripts/thinnka_watchdog.py`` runs on the pod next to every job and
terminates the pod when the job chain ended with nobody following, when a job
ended and nobody started the next one, or when the run's deadline passed.
thinnka arms it by uploading the script and ``watchdog.json`` before it starts a
job, and, while it follows the run, rewrites ``watchdog.heartbeat`` over SFTP (the
pod's clock stamps it, so the grace period is measured on one clock). On an Instant
Cluster every node gets its own (``arm_watchdog`` with the node's pod id and rank), and
``Heartbeat``'s ``also`` touches the other nodes' heartbeats at rank 0's beats.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from thinnka.options.limits import max_hours_for, orphan_grace_s, push_hold_s
from thinnka.resources import resource_dir

if TYPE_CHECKING:
    from collections.abc import Callable

    from thinnka.clients.ssh import PodShell
    from thinnka.step import StepContext
    from thinnka.store import RunRecord

__all__ = [
    "HEARTBEAT_EVERY_S",
    "Heartbeat",
    "arm_watchdog",
    "job_chain",
    "touch_heartbeat",
    "watchdog_config",
]

HEARTBEAT_EVERY_S = 10.0
SCRIPT = "thinnka_watchdog.py"


def watchdog_config(
    run: RunRecord, chain: list[str], *, pod_id: str | None = None, rank: int = 0
) -> dict[str, object]:
    """What the watchdog enforces for this run (all times on the epoch clock); ``pod_id``
    and ``rank`` name a cluster node other than the run's pod (rank 0)."""
    options = run.options
    hours, _ = max_hours_for(options)
    grace = float(options.watchdog_grace)
    return {
        "run_id": run.id,
        "pod_id": pod_id or run.pod_id,
        # --nodes: the watchdog deletes the whole cluster (its member pods cannot go alone).
        "cluster_id": run.cluster_id,
        # Rank 0 pushes after its training; another node whose part ended well leaves the
        # cluster to rank 0's watchdog for as long as rank 0 may hold an unpushed model.
        "node_rank": rank,
        "chain": chain,
        "grace_s": grace,
        # A pod idle between jobs (the orchestrator died after setup) waits this long.
        "orphan_grace_s": orphan_grace_s(options),
        # A trained model the pod could not push stays on its pod this long (push.held).
        "push_hold_s": push_hold_s(options),
        # A short grace (tests) wants a fast poll; a real one needs no more than 5 s.
        "poll_s": min(5.0, max(grace / 4, 0.25)),
        "max_hours": hours,
        "max_cost": options.max_cost,
        "cost_per_hr": run.cost_per_hr,
        "pod_started_epoch": run.pod_started_at.timestamp() if run.pod_started_at else None,
    }


def job_chain(merge: bool) -> list[str]:
    return ["setup", "train", "merge"] if merge else ["setup", "train"]


def arm_watchdog(
    ctx: StepContext,
    shell: PodShell,
    *,
    pod_id: str | None = None,
    rank: int = 0,
    touch: bool = True,
) -> None:
    """Upload the script and its config; ``job.sh`` starts it with the next job. A cluster
    node other than rank 0 (``pod_id``, ``rank``) gets one of its own, on its own disk.
    ``touch=False`` leaves the heartbeat to a caller that touches it right after."""
    run_dir = ctx.run.remote.run_dir or ""
    script = (resource_dir("recipes") / "scripts" / SCRIPT).read_text()
    shell.put_text(f"{run_dir}/{SCRIPT}", script, mode=0o755)
    chain = job_chain(ctx.run.options.merge_model)
    config = watchdog_config(ctx.run, chain, pod_id=pod_id, rank=rank)
    shell.put_text(f"{run_dir}/watchdog.json", json.dumps(config, indent=1) + "\n")
    if touch:
        touch_heartbeat(shell, run_dir)


def touch_heartbeat(shell: PodShell, run_dir: str) -> None:
    """Say "a thinnka process follows this run" (a write gives the file the pod's time)."""
    shell.put_text(f"{run_dir}/watchdog.heartbeat", f"{time.time():.0f}\n")


class Heartbeat:
    """Touches the heartbeat every ``every`` seconds (at most) while a loop runs; ``also``
    is called at the same beats (a cluster's other nodes, whose watchdogs wait on theirs)."""

    def __init__(
        self,
        shell: PodShell,
        run_dir: str,
        grace_s: float,
        also: Callable[[], None] | None = None,
    ) -> None:
        self.shell, self.run_dir, self.also = shell, run_dir, also
        self.every = min(HEARTBEAT_EVERY_S, grace_s / 3)  # several beats per grace period
        self._last = 0.0

    def beat(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.every:
            touch_heartbeat(self.shell, self.run_dir)
            if self.also is not None:
                self.also()
            self._last = now
