"""Instant Clusters in the fake Runpod: REST v2 ``/v2/clusters`` over the same account state.

What it plays (docs/runpod.md, "Instant Clusters"): a closed create body (422 naming the
field), ``podCount`` 2-250 and ``gpuCountPerPod`` up to the type's maximum, only the GPU
types Runpod sells as clusters (another type, or too little stock for every node, is the
no-capacity 400, and no pod is left behind); members are pods with ``cluster: {id, rank,
ip}``, hidden from ``GET /v2/pods`` unless ``includeClusterPods=true``, and a ``DELETE`` of one
member through the pod routes is a 409; one ``DELETE /v2/clusters/{id}`` (204) terminates
them all. Every node's container env carries what Runpod documents (``MASTER_ADDR``,
``MASTER_PORT``, ``NODE_RANK``, ``NUM_NODES``, ``NUM_TRAINERS``, ``WORLD_SIZE``, ...), with
``127.0.0.1`` as every address, since all nodes share this machine's network.

Each node may have its own SSH endpoint (``set_cluster_nodes``): node ``rank`` gets the
``rank``-th one's port, and its sessions that node's env. ``tests/world/cluster_nodes.py``
makes such endpoints with a file-system root of their own.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.world._runpod_model import Account, Pod
from tests.world._runpod_podkeys import pod_keys
from tests.world._runpod_records import NO_CAPACITY, RunpodError, gpu_by_id
from tests.world._runpod_schema import iso_time
from tests.world._runpod_state import World
from tests.world._runpod_v2render import DATA_CENTERS, billing_records, render_gpu_v2, render_v2

__all__ = [
    "CLUSTER_GPUS",
    "ClusterNodeEndpoint",
    "cluster_billing",
    "cluster_catalog",
    "handle_clusters",
    "hidden_member",
    "member_deletes_cluster",
    "member_view",
    "set_cluster_nodes",
]

# The types Runpod sells as self-serve clusters that this fake's catalog has.
CLUSTER_GPUS = ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA H200")
_BODY_KEYS = {"name", "type", "compute", "dataCenterIds", "mounts", "image", "args", "disk",
              "env", "ports", "startSsh", "startJupyter"}  # fmt: skip
_COMPUTE_KEYS = {"gpuTypeId", "gpuCountPerPod", "podCount"}
_TYPES = ("TRAINING", "APPLICATION", "SLURM", "RAY")
_NODE_ADDR = "127.0.0.1"


@dataclass(frozen=True)
class ClusterNodeEndpoint:
    """One node's own SSH endpoint: its port and how it accepts a key with the node's env."""

    port: int
    authorize: Callable[[str, Mapping[str, str]], None]


@dataclass
class _Cluster:
    id: str
    account_id: str
    name: str
    type: str
    compute: dict[str, Any]
    pod_ids: list[str]
    created_at: float
    master_port: int
    deleted: bool = False  # gone from every route, but its members' bills stay


@dataclass
class _Book:
    clusters: dict[str, _Cluster] = field(default_factory=dict)
    nodes: list[ClusterNodeEndpoint] = field(default_factory=list)
    made: int = 0


def _book(world: World) -> _Book:
    book = world.__dict__.get("_clusters")
    if book is None:
        book = world.__dict__.setdefault("_clusters", _Book())
    # A reset world forgot the members' bills: their clusters went with them.
    for cid in [c.id for c in book.clusters.values() if not set(c.pod_ids) & world.bills.keys()]:
        del book.clusters[cid]
    return book  # type: ignore[no-any-return]


def set_cluster_nodes(world: World, nodes: list[ClusterNodeEndpoint]) -> None:
    """Node ``rank`` of every cluster created from now on is reached at ``nodes[rank]``."""
    with world.lock:
        _book(world).nodes = list(nodes)


def _member(world: World, pod_id: str) -> tuple[_Cluster, int] | None:
    for cluster in _book(world).clusters.values():
        if pod_id in cluster.pod_ids:
            return cluster, cluster.pod_ids.index(pod_id)
    return None


def hidden_member(world: World, pod_id: str) -> bool:
    """True for a cluster member (hidden from the pod list, not deletable one by one)."""
    with world.lock:
        return _member(world, pod_id) is not None


def member_view(world: World, pod: Pod, *, fresh: bool = False) -> dict[str, Any]:
    """The pod as v2 renders it, with ``cluster`` for a member."""
    with world.lock:
        view = render_v2(world, pod, fresh=fresh)
        found = _member(world, pod.id)
        if found is not None:
            cluster, rank = found
            view["cluster"] = {"id": cluster.id, "rank": rank, "ip": _NODE_ADDR}
        return view


def cluster_catalog(world: World, count: int, gpu_id: str | None) -> list[dict[str, Any]]:
    """``GET /v2/catalog/gpus?product=CLUSTER``: the cluster types, stocked for ``count``."""
    with world.lock:
        return [
            render_gpu_v2(world, gpu, count=count, cloud="SECURE", include=True)
            for gpu in (gpu_by_id(g) for g in CLUSTER_GPUS)
            if gpu is not None and (gpu_id is None or gpu.id == gpu_id)
        ]


def handle_clusters(
    world: World, account: Account, method: str, rest: list[str], body: Any
) -> tuple[int, dict[str, Any] | None]:
    """``/v2/clusters[/{id}[/pods]]``: (status, body); a problem is ``(status, {"detail"})``."""
    with world.lock:
        book = _book(world)
        if not rest and method == "GET":
            mine = [
                c for c in book.clusters.values() if c.account_id == account.id and not c.deleted
            ]
            return 200, {"clusters": [_render(world, account, c) for c in mine]}
        if not rest and method == "POST":
            return _create(world, account, book, body)
        cluster = book.clusters.get(rest[0]) if rest else None
        if cluster is None or cluster.account_id != account.id or cluster.deleted:
            return 404, {"detail": "resource not found"}
        if len(rest) == 1 and method == "GET":
            return 200, _render(world, account, cluster)
        if len(rest) == 1 and method == "DELETE":
            cluster.deleted = True
            for pod_id in cluster.pod_ids:
                if pod_id in account.pods:
                    world.terminate(account, pod_id, by="cluster")
            return 204, None
        if rest[1:] == ["pods"] and method == "GET":
            pods = [account.pods[p] for p in cluster.pod_ids if p in account.pods]
            return 200, {"pods": [member_view(world, p) for p in pods]}
    return 404, {"detail": "resource not found"}


def member_deletes_cluster(world: World, pod_id: str, cluster_id: str) -> tuple[int, str]:
    """A member's pod-scoped key deletes its own cluster: (status, detail)."""
    with world.lock:
        found = _member(world, pod_id)
        if found is None or found[0].id != cluster_id or found[0].deleted:
            return 403, "access denied: a pod-scoped key may only act on its own cluster"
        cluster = found[0]
        cluster.deleted = True
        account = world.account(cluster.account_id)
        for member in cluster.pod_ids:
            if member in account.pods:
                world.terminate(account, member, by="pod:cluster")
        return 204, ""


def cluster_billing(world: World, account: Account, cluster_id: str | None) -> list[dict[str, Any]]:
    """``GET /v2/billing/clusters``: the members' records, each naming its cluster."""
    wall = world.wall()
    with world.lock:
        records = []
        for cluster in _book(world).clusters.values():
            if cluster.account_id == account.id and cluster_id in (None, cluster.id):
                records += _records(world, account, cluster, wall)
        for record in records:
            record["clusterId"] = cluster_id
        return records


def _records(
    world: World, account: Account, cluster: _Cluster, wall: float
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for pod_id in cluster.pod_ids:
        found += billing_records(world, account.id, pod_id, "day", wall - 30 * 86400, wall)
    return found


def _errors(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["$: value must be an object"]
    errors = [f"$: additional properties '{k}' not allowed" for k in body if k not in _BODY_KEYS]
    for key in ("name", "type", "compute"):
        if key not in body:
            errors.append(f"$: missing property '{key}'")
    if not isinstance(body.get("name", ""), str) or body.get("name") == "":
        errors.append("$.name: length must be >= 1")
    if "type" in body and body["type"] not in _TYPES:
        errors.append("$.type: value must be one of " + ", ".join(f"'{t}'" for t in _TYPES))
    compute = body.get("compute")
    if "compute" in body and not isinstance(compute, dict):
        errors.append("$.compute: value must be an object")
    elif isinstance(compute, dict):
        errors += [f"$.compute: additional properties '{k}' not allowed"
                   for k in compute if k not in _COMPUTE_KEYS]  # fmt: skip
        count, pods = compute.get("gpuCountPerPod"), compute.get("podCount")
        if not isinstance(compute.get("gpuTypeId"), str):
            errors.append("$.compute: missing property 'gpuTypeId'")
        if not isinstance(count, int) or count < 1:
            errors.append("$.compute.gpuCountPerPod: value must be >= 1")
        if not isinstance(pods, int) or not 2 <= pods <= 250:
            errors.append("$.compute.podCount: value must be between 2 and 250")
    return errors


def _create(
    world: World, account: Account, book: _Book, body: Any
) -> tuple[int, dict[str, Any] | None]:
    errors = _errors(body)
    if errors:
        return 422, {"detail": "Request validation failed.", "errors": errors}
    compute = body["compute"]
    gpu = gpu_by_id(compute["gpuTypeId"])
    per_pod, pod_count = compute["gpuCountPerPod"], compute["podCount"]
    if gpu is None or gpu.id not in CLUSTER_GPUS or per_pod > gpu.max_gpu_count:
        return 400, {"detail": NO_CAPACITY}
    if world.available(gpu.id) < per_pod * pod_count:
        return 400, {"detail": NO_CAPACITY}  # every node or none: no half cluster
    book.made += 1
    cluster = _Cluster(
        id=f"cl{book.made:04d}{gpu.id[-3:].lower().replace(' ', '')}",
        account_id=account.id,
        name=body["name"],
        type=body["type"],
        compute=dict(compute),
        pod_ids=[],
        created_at=world.wall(),
        master_port=_free_port(),
    )
    persistent = (body.get("mounts") or {}).get("persistent") or {}
    for rank in range(pod_count):
        spec = {
            "name": body["name"],
            "imageName": body.get("image"),
            "gpuTypeId": gpu.id,
            "gpuCount": per_pod,
            "cloudType": "SECURE",
            "containerDiskInGb": body.get("disk"),
            "ports": ",".join(body.get("ports") or []),
            "env": [{"key": k, "value": v} for k, v in (body.get("env") or {}).items()],
            "dockerArgs": body.get("args"),
            "volumeInGb": persistent.get("size"),
            "volumeMountPath": persistent.get("path"),
            "startSsh": body.get("startSsh", False),
        }
        try:
            pod = world.deploy(account, spec)
        except RunpodError:
            for made in cluster.pod_ids:
                world.terminate(account, made, by="cluster")
            return 400, {"detail": NO_CAPACITY}
        cluster.pod_ids.append(pod.id)
        _node_env(world, account, pod, cluster, rank, pod_count, per_pod, book)
    book.clusters[cluster.id] = cluster
    return 201, _render(world, account, cluster)


def _node_env(
    world: World,
    account: Account,
    pod: Pod,
    cluster: _Cluster,
    rank: int,
    nodes: int,
    per_pod: int,
    book: _Book,
) -> None:
    """What Runpod puts into every node's env; the node's own SSH endpoint, if any."""
    registry = pod_keys(world)
    port = str(cluster.master_port)
    extra = {
        "PRIMARY_ADDR": _NODE_ADDR,
        "MASTER_ADDR": _NODE_ADDR,
        "PRIMARY_PORT": port,
        "MASTER_PORT": port,
        "NODE_ADDR": _NODE_ADDR,
        "NODE_RANK": str(rank),
        "NUM_NODES": str(nodes),
        "NUM_TRAINERS": str(per_pod),
        "HOST_NODE_ADDR": f"{_NODE_ADDR}:{port}",
        "WORLD_SIZE": str(nodes * per_pod),
    }
    with registry.lock:
        env = registry.env_of.setdefault(pod.id, {})
        env.update(extra)
        env = dict(env)
    if rank < len(book.nodes):
        endpoint = book.nodes[rank]
        pod.public_ports = {**pod.public_ports, 22: endpoint.port}
        for name, value in pod.env:
            if name == "PUBLIC_KEY":  # what Runpod images do with it at boot, on this node
                endpoint.authorize(value, env)


def _render(world: World, account: Account, cluster: _Cluster) -> dict[str, Any]:
    pods = [account.pods[p] for p in cluster.pod_ids if p in account.pods]
    views = [render_v2(world, p) for p in pods]
    by_status: dict[str, int] = {}
    for view in views:
        by_status[view["status"]] = by_status.get(view["status"], 0) + 1
    primary: dict[str, Any] | None = None
    if views:
        first = views[0]
        primary = {"podId": first["id"], "status": first["status"]}
        direct = (first.get("ssh") or {}).get("direct")
        if direct:
            primary["sshEndpoint"] = f"{direct['host']}:{direct['port']}"
    return {
        "id": cluster.id,
        "name": cluster.name,
        "type": cluster.type,
        "compute": cluster.compute,
        "pods": {"total": len(views), "byStatus": by_status},
        "createdAt": iso_time(cluster.created_at),
        "dataCenterId": DATA_CENTERS[0][0],
        "network": {"cidr": "10.65.0.0/16"},
        "primary": primary,
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_NODE_ADDR, 0))
        return int(probe.getsockname()[1])
