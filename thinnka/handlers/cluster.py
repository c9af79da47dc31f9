"""The ``--nodes`` branch of the pipeline's steps: an Instant Cluster instead of one pod.

Each step's own handler calls in here where a cluster differs; what is the same for the
primary node (rank 0), which is the run's pod, stays with the handler:

- provision: create the cluster (REST v2), candidate by candidate, after looking for this
  run's cluster by name (a create whose answer was lost); record the cluster id at once,
  then its nodes by rank, rank 0 as the run's pod, and the price of all nodes.
- connect: every other node's SSH port, its host key pinned per node, its run folder, and
  the rendezvous each node's Runpod env names.
- install: each node gets the run's files with its own accelerate config and env; the
  setups run at once on every node (detached jobs), and a node whose setup fails fails it.
- train: the other nodes start before rank 0, which the pipeline then follows.
- terminate: every node's logs are copied home, and the whole cluster is deleted (its
  member pods cannot be deleted one by one), confirmed by reading it back.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from thinnka.errors import CapacityError, NotFoundError, RemoteError, ThinnkaError, TransientError
from thinnka.pod.bootguard import CLUSTER_ID_FILE
from thinnka.pod.cluster import (
    NodeBeats,
    NodeFacts,
    node_shell,
    nodes_of,
    read_cluster_env,
    save_node,
    workers_of,
)
from thinnka.pod.jobs import log_tail, start_job, wait_for_job
from thinnka.pod.shell import open_shell
from thinnka.pod.watchdog import Heartbeat, arm_watchdog, touch_heartbeat
from thinnka.preflight import cluster_api
from thinnka.rendering.nodes import node_accelerate, node_env
from thinnka.store.models import utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from thinnka.clients.runpod import Pod
    from thinnka.clients.runpod.clusters import ClusterNode, ClusterSpec, RestClusters
    from thinnka.clients.ssh import PodShell
    from thinnka.planning.facts import PlanCandidate, RemotePaths
    from thinnka.rendering import Rendered
    from thinnka.step import StepContext

    SpecFor = Callable[[PlanCandidate], ClusterSpec]
    Upload = Callable[[PodShell, NodeFacts], None]
    WaitPort = Callable[[StepContext, str, float], Pod]

__all__ = [
    "SpecFor",
    "cluster_files",
    "connect_workers",
    "create_cluster",
    "delete_and_confirm",
    "delete_cluster",
    "finish_worker_setups",
    "keep_node_logs",
    "require_workers",
    "run_cluster_id",
    "start_worker_jobs",
    "upload_to_workers",
]

_RANKS_POLL_S = 0.5


# ------------------------------------------------------------------ provision
def create_cluster(
    ctx: StepContext, name: str, candidates: list[PlanCandidate], spec_for: SpecFor
) -> str:
    """The run's cluster (adopted or created) with its nodes recorded; returns rank 0's GPU
    type id. ``CapacityError`` when no candidate had room for every node."""
    clusters = cluster_api(ctx.services)
    found = _adopt(ctx, clusters, name)
    gpu_type = ctx.run.gpu_type
    last: Exception | None = None
    if found is None:
        for candidate in candidates:
            ctx.check_cancelled()
            where = f"{ctx.run.options.nodes} × {candidate.display_name}"
            ctx.output.event("gpu_try", f"Trying an Instant Cluster of {where}.")
            try:
                found = clusters.create_cluster(spec_for(candidate)).id
            except CapacityError as exc:
                last = exc
                ctx.note("gpu_fail", f"cluster of {candidate.id}: {exc.message}")
                ctx.output.event("gpu_fail", f"{where}: no capacity.")
                continue
            gpu_type = candidate.id
            break
    if found is None:
        raise CapacityError(
            f"Unable to create an Instant Cluster on any candidate GPU. Last error: {last}"
            if last
            else "No GPU candidates to try."
        )
    ctx.save(cluster_id=found)  # before anything else: recover and reap look it up by it
    nodes = _ranked_nodes(ctx, clusters, found)
    primary = nodes[0]
    prices = [n.pod.cost_per_hr for n in nodes]
    ctx.save(
        pod_id=primary.pod.id,
        gpu_type=gpu_type or primary.pod.gpu_type_id,
        gpu_count=primary.pod.gpu_count or ctx.run.options.gpu_count,
        # The run's price is the cluster's: every limit and estimate counts all nodes.
        cost_per_hr=sum(p for p in prices if p is not None) if any(prices) else None,
        pod_started_at=ctx.run.pod_started_at or utcnow(),
        cluster_nodes=[NodeFacts(rank=n.rank or 0, pod_id=n.pod.id).to_json() for n in nodes],
    )
    ctx.output.event(
        "pod_created",
        f"Instant Cluster {found}: {len(nodes)} nodes ({', '.join(n.pod.id for n in nodes)}).",
    )
    return gpu_type or ""


def _adopt(ctx: StepContext, clusters: RestClusters, name: str) -> str | None:
    if ctx.run.cluster_id is not None and clusters.get_cluster(ctx.run.cluster_id) is not None:
        return ctx.run.cluster_id
    mine = [c.id for c in clusters.list_clusters() if c.name == name]  # the name holds the run id
    for extra in mine[1:]:  # never keep two clusters for one run
        clusters.delete_cluster(extra)
        ctx.note("pod_terminated", f"Deleted duplicate cluster {extra}.")
    return mine[0] if mine else None


def _ranked_nodes(ctx: StepContext, clusters: RestClusters, cluster_id: str) -> list[ClusterNode]:
    """The members once every one has its rank (Runpod assigns them while placing)."""
    wanted = ctx.run.options.nodes
    while True:
        nodes = clusters.nodes(cluster_id)
        if len(nodes) == wanted and all(n.rank is not None for n in nodes):
            return nodes
        ctx.check_deadline(f"Ranking the nodes of cluster {cluster_id}")
        time.sleep(_RANKS_POLL_S)


# ------------------------------------------------------------------ connect
def connect_workers(ctx: StepContext, run_dir: str, wait_port: WaitPort) -> None:
    """Every node's SSH (rank 0's is open already), host keys pinned, run folders made, and
    the rendezvous each node reports recorded. ``wait_port(ctx, pod_id, deadline)`` is the
    connect step's wait for a pod's public SSH port."""
    for node in nodes_of(ctx):
        if node.rank == 0:
            shell = open_shell(ctx)
            node = replace(node, ssh_host=ctx.run.ssh_host, ssh_port=ctx.run.ssh_port,
                           host_key=ctx.run.host_key)  # fmt: skip
        else:
            if node.ssh_host is None:
                pod = wait_port(ctx, node.pod_id, ctx.deadline)
                port = pod.public_ssh()
                assert port is not None
                node = save_node(ctx, replace(node, ssh_host=port.ip, ssh_port=port.public_port))
            shell = node_shell(ctx, node, timeout=max(30.0, ctx.remaining()))
            node = next(n for n in nodes_of(ctx) if n.rank == node.rank)  # its pinned key
            shell.make_dirs(run_dir)
            touch_heartbeat(shell, run_dir)
        # The node's boot guard deletes the cluster, not its pod (a member's own delete is a
        # 409): Runpod's env names no cluster id, so it is written where the guard looks.
        shell.put_text(f"{run_dir}/{CLUSTER_ID_FILE}", f"{ctx.run.cluster_id or ''}\n")
        env = read_cluster_env(shell)
        if "MASTER_ADDR" not in env or not env.get("MASTER_PORT", "").isdigit():
            raise RemoteError(
                f"Node {node.rank} ({node.pod_id}) reports no MASTER_ADDR/MASTER_PORT: it is "
                "not set up as an Instant Cluster node.",
                reason="pod_gone",
            )
        save_node(
            ctx, replace(node, master_addr=env["MASTER_ADDR"], master_port=int(env["MASTER_PORT"]))
        )
    ctx.output.event("ssh_connected", f"SSH connected to all {len(nodes_of(ctx))} nodes.")


# ------------------------------------------------------------------ install and train
def cluster_files(
    ctx: StepContext, rendered: Rendered, env: dict[str, str], node: NodeFacts
) -> tuple[dict[str, str], dict[str, str]]:
    """(files, run.env values) for ``node``: its accelerate config and env."""
    primary = next(n for n in nodes_of(ctx) if n.rank == 0)
    addr, port = primary.master_addr or node.master_addr, primary.master_port or node.master_port
    if addr is None or port is None:
        raise RemoteError(f"Node {node.rank} has no rendezvous recorded; run `resume`.")
    nodes = ctx.run.options.nodes
    files = dict(rendered.files)
    files["accelerate.yaml"] = node_accelerate(
        rendered.accelerate, nodes=nodes, rank=node.rank, master_addr=addr, master_port=port
    )
    use_cpu = bool(rendered.recipe.get("use_cpu"))
    return files, node_env(env, nodes=nodes, rank=node.rank, use_cpu=use_cpu)


def upload_to_workers(ctx: StepContext, upload: Upload) -> None:
    """Every node but rank 0 gets its files (``upload(shell, node)`` writes them)."""
    for node in workers_of(ctx):
        upload(node_shell(ctx, node), node)


def start_worker_jobs(ctx: StepContext, paths: RemotePaths, name: str, argv: list[str]) -> None:
    """Start job ``name`` on every node but rank 0 (each once: a restart adopts it), each
    with its own watchdog armed first: a node whose job ended with nobody following, or
    that is past the run's deadline, deletes the whole cluster even when rank 0 is gone."""
    for node in workers_of(ctx):
        shell = node_shell(ctx, node)
        arm_watchdog(ctx, shell, pod_id=node.pod_id, rank=node.rank)
        start_job(shell, paths.run_dir, name, argv)


def finish_worker_setups(ctx: StepContext, paths: RemotePaths, name: str) -> None:
    """Wait for job ``name`` on every other node; a node whose job failed fails the step.
    Every node's heartbeat (rank 0's too, idle between its jobs) is touched meanwhile."""
    primary = open_shell(ctx)
    heartbeat = Heartbeat(primary, paths.run_dir, ctx.run.options.watchdog_grace, NodeBeats(ctx))
    for node in workers_of(ctx):
        shell = node_shell(ctx, node)
        code = wait_for_job(ctx, shell, paths.run_dir, name, beat=heartbeat.beat)
        if code != 0:
            tail = log_tail(shell, paths.run_dir, name)
            raise RemoteError(
                f"Setup on node {node.rank} ({node.pod_id}) failed with exit status {code}. "
                f"Last output:\n{tail}",
                reason="setup_failed",
            )


def require_workers(ctx: StepContext, exit_code: int) -> None:
    """After rank 0's training failed: ``pod_lost`` naming the node whose loss broke the
    process group (a peer's death is what fails rank 0), else nothing (rank 0's own fault)."""
    from thinnka.pod.jobs import pod_gone

    lost = [n for n in workers_of(ctx) if pod_gone(ctx.services.runpod, n.pod_id)]
    if lost:
        names = ", ".join(f"node {n.rank} (pod {n.pod_id})" for n in lost)
        raise RemoteError(
            f"{names} of the cluster was lost during training; rank 0's training then failed "
            f"(exit status {exit_code}) with the process group it belonged to.",
            reason="pod_lost",
        )


# ------------------------------------------------------------------ terminate
def keep_node_logs(ctx: StepContext) -> list[str]:
    """Copy every other node's job logs next to the run's local log (best effort)."""
    run_dir = ctx.run.remote.run_dir
    if run_dir is None:
        return []
    folder = ctx.settings.remote_log(ctx.run.id).parent
    folder.mkdir(parents=True, exist_ok=True)
    kept = []
    for node in workers_of(ctx):
        with contextlib.suppress(ThinnkaError, OSError):
            shell = node_shell(ctx, node, timeout=20.0)
            for job in ("setup", "train"):
                data = shell.read_from(f"{run_dir}/{job}.log", 0, 64 << 20)
                if data:
                    target = folder / f"node{node.rank}-{job}.log"
                    target.write_bytes(data)
                    kept.append(target.name)
    return kept


def run_cluster_id(ctx: StepContext) -> str | None:
    """The run's cluster: as recorded, else found by its name (a create whose id was lost)."""
    if ctx.run.cluster_id is not None or ctx.run.pod_name is None:
        return ctx.run.cluster_id
    found = [c.id for c in cluster_api(ctx.services).list_clusters() if c.name == ctx.run.pod_name]
    return found[0] if found else None


def delete_cluster(ctx: StepContext, cluster_id: str, deadline: float) -> None:
    """Delete the cluster (and with it every node) and wait until reading it shows it gone."""
    delete_and_confirm(cluster_api(ctx.services), cluster_id, deadline)


def delete_and_confirm(clusters: RestClusters, cluster_id: str, deadline: float) -> None:
    """``delete_cluster`` with the cluster calls alone (no step: the database may be down)."""
    delay = 0.25
    while True:
        with contextlib.suppress(NotFoundError):
            clusters.delete_cluster(cluster_id)
        if clusters.get_cluster(cluster_id) is None:
            return
        if time.monotonic() + delay > deadline:
            raise TransientError(f"Cluster {cluster_id} still exists after its delete.")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
