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

import shlex
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from thinnka.clients.ssh import PodShell
from thinnka.errors import RemoteError
from thinnka.pod.shell import shell_to

if TYPE_CHECKING:
    from thinnka.step import StepContext

__all__ = [
    "CLUSTER_VARS",
    "NodeFacts",
    "node_shell",
    "nodes_of",
    "read_cluster_env",
    "wait_for_job",
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


def wait_for_job(
    ctx: StepContext, shell: PodShell, run_dir: str, name: str, *, poll: float = 1.0
) -> int:
    """The exit code of job ``name`` on a worker node, waiting (within the step's deadline)."""
    from thinnka.pod.jobs import job_exit_code

    while True:
        ctx.check_cancelled()
        code = job_exit_code(shell, run_dir, name)
        if code is not None:
            return code
        ctx.check_deadline(f"The {name} job on a cluster node")
        time.sleep(poll)


def log_tail(shell: PodShell, run_dir: str, name: str, lines: int = 30) -> str:
    """The last lines of a job's log on a node (for an error message)."""
    path = shlex.quote(f"{run_dir}/{name}.log")
    return shell.run(f"tail -n {lines} {path} 2>/dev/null || true", timeout=30).stdout
