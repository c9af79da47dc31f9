"""What is done on and against the nodes of an Instant Cluster (``--nodes``).

The primary node (rank 0) is the run's pod: its id, SSH address and pinned host key are the
run's ``pod_id``/``ssh_host``/``ssh_port``/``host_key``, so following the training, the
watchdog's heartbeat and the push check work on it as on one pod. The other nodes are
``runs.cluster_nodes`` entries (``NodeFacts``): each has its own SSH address and its own
host key, pinned the moment it is first seen, and its own run folder on its own disk.

Each node reports the rendezvous its Runpod env names (``MASTER_ADDR``, ``MASTER_PORT``,
``NODE_RANK``): read from the SSH session's env, else from the container's first process
(``/proc/1/environ``), because an SSH session on a Runpod image need not carry the container
env.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from thinnka.clients.ssh import PodShell
from thinnka.errors import RemoteError, ThinnkaError
from thinnka.pod.shell import shell_to
from thinnka.pod.watchdog import touch_heartbeat

if TYPE_CHECKING:
    from thinnka.step import StepContext

__all__ = [
    "CLUSTER_VARS",
    "NodeBeats",
    "NodeFacts",
    "node_shell",
    "nodes_of",
    "read_cluster_env",
    "workers_of",
]

CLUSTER_VARS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "NUM_NODES")


@dataclass(frozen=True)
class NodeFacts:
    """One node of the run's cluster, as recorded in ``runs.cluster_nodes``."""

    rank: int
    pod_id: str
    ssh_host: str | None = None
    ssh_port: int | None = None
    host_key: str | None = None
    master_addr: str | None = None
    master_port: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeFacts:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def nodes_of(ctx: StepContext) -> list[NodeFacts]:
    """Every node of the run's cluster, by rank (empty for a single pod)."""
    return sorted((NodeFacts.from_json(n) for n in ctx.run.cluster_nodes), key=lambda n: n.rank)


def workers_of(ctx: StepContext) -> list[NodeFacts]:
    """The nodes other than the primary (rank 0), whom the run's pod fields stand for."""
    return [n for n in nodes_of(ctx) if n.rank != 0]


def save_node(ctx: StepContext, node: NodeFacts) -> NodeFacts:
    """Record ``node`` (replacing its rank's entry) at once: a pinned key must not wait."""
    others = [n for n in nodes_of(ctx) if n.rank != node.rank]
    entries = sorted([*others, node], key=lambda n: n.rank)
    ctx.save(cluster_nodes=[n.to_json() for n in entries])
    return node


def node_shell(ctx: StepContext, node: NodeFacts, *, timeout: float = 120.0) -> PodShell:
    """A shell on ``node``; its host key is pinned on first sight and checked after."""
    if node.ssh_host is None or node.ssh_port is None:
        raise RemoteError(f"Node {node.rank} ({node.pod_id}) has no SSH address recorded.")
    # Kept by pod: a lost node's connection is never reused.
    shell, opened = shell_to(
        ctx, node.pod_id, node.ssh_host, node.ssh_port, node.host_key, timeout=timeout
    )
    if opened and node.host_key is None:
        save_node(ctx, replace(node, host_key=shell.host_key))
    return shell


def read_cluster_env(shell: PodShell) -> dict[str, str]:
    """The node's Runpod cluster variables (session env first, then the container's)."""
    names = " ".join(CLUSTER_VARS)
    script = (
        f"for v in {names}; do "
        'val=$(printenv "$v" || true); '
        'if [ -z "$val" ] && [ -r /proc/1/environ ]; then '
        "val=$(tr '\\0' '\\n' < /proc/1/environ | sed -n \"s/^$v=//p\" | head -n 1); fi; "
        'printf "%s=%s\\n" "$v" "$val"; done'
    )
    result = shell.run(script, timeout=30)
    values = dict(line.partition("=")[::2] for line in result.stdout.splitlines() if "=" in line)
    return {k: v for k, v in values.items() if v}


class NodeBeats:
    """Touches the heartbeat of every node but rank 0 (each node's watchdog reads its own
    disk's). Called at the heartbeat's cadence while rank 0 is followed: one small SFTP
    write per node over its pooled connection. A node that cannot be reached is left out
    for ``retry_s``: a lost node must not stall following rank 0 (its loss fails the run
    another way), and its watchdog is gone with it anyway."""

    def __init__(self, ctx: StepContext, *, retry_s: float = 60.0) -> None:
        self.ctx, self.retry_s = ctx, retry_s
        self._skip_until: dict[int, float] = {}

    def __call__(self) -> None:
        run_dir = self.ctx.run.remote.run_dir
        if run_dir is None:
            return
        for node in workers_of(self.ctx):
            if time.monotonic() < self._skip_until.get(node.rank, 0.0):
                continue
            try:
                touch_heartbeat(node_shell(self.ctx, node, timeout=10.0), run_dir)
            except (ThinnkaError, OSError):
                self._skip_until[node.rank] = time.monotonic() + self.retry_s
