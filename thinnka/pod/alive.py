"""Whether a pod is still there, as the API says: the run's pod, or a node of its cluster.

A cluster node that is lost breaks rank 0's process group, but rank 0's trainer notices
only when a collective fails, which can take until the backend's timeout (NCCL waits
minutes on a peer that stopped answering) while every node bills. So while rank 0 is
followed, the API is asked about the other nodes as well, every ``NODE_CHECK_EVERY_S``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from thinnka.errors import RemoteError
from thinnka.pod.cluster import workers_of

if TYPE_CHECKING:
    from thinnka.clients.runpod import RunpodApi
    from thinnka.step import StepContext

__all__ = ["NODE_CHECK_EVERY_S", "LostNodes", "pod_gone"]

_GONE_STATUSES = frozenset({"EXITED", "TERMINATED", "DEAD"})
# One GET per node; a lost node is noticed within this, not at the trainer's timeout.
NODE_CHECK_EVERY_S = 30.0


def pod_gone(runpod: RunpodApi, pod_id: str | None) -> bool:
    """Ask the API (one read, bounded by the client) whether ``pod_id`` is gone or stopped;
    False when there is no pod yet."""
    if pod_id is None:
        return False
    pod = runpod.get_pod(pod_id)
    return pod is None or pod.desired_status in _GONE_STATUSES


class LostNodes:
    """Called while a job is followed on rank 0: at most every ``every`` seconds, asks the
    API about every other node and raises ``RemoteError`` (``pod_lost``) naming the ones
    gone; the run then fails and its cluster is deleted at once."""

    def __init__(self, ctx: StepContext, *, every: float = NODE_CHECK_EVERY_S) -> None:
        self.ctx, self.every = ctx, every
        self._last = time.monotonic()  # the first look after one period: connect just looked

    def __call__(self, what: str) -> None:
        if time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        runpod = self.ctx.services.runpod
        lost = [n for n in workers_of(self.ctx) if pod_gone(runpod, n.pod_id)]
        if lost:
            names = ", ".join(f"node {n.rank} (pod {n.pod_id})" for n in lost)
            raise RemoteError(
                f"{names} of the cluster was lost while {what} ran on rank 0; the run stops "
                "now rather than when rank 0's process group times out.",
                reason="pod_lost",
            )
