"""Runpod Instant Clusters over REST v2 (``/v2/clusters``): the calls a multi-node run makes.

What Runpod documents, and this client relies on (docs/runpod.md, "Instant Clusters"):

- A cluster is 2 or more identical GPU pods in one data center, joined by a private network.
  Self-serve sizes are 2 to 8 nodes of 8 GPUs. Only REST v2 has clusters (GraphQL none).
- ``POST /v2/clusters`` takes a closed body: ``name``, ``type`` (``TRAINING`` for generic
  distributed training), ``compute`` (``gpuTypeId``, ``gpuCountPerPod``, ``podCount``) and the
  container fields applied to every pod (``image``, ``args``, ``disk``, ``env``, ``ports``,
  ``mounts``, ``startSsh``). There is no ``cloud`` and no ``registry``. 201 is the cluster; a
  400 is no capacity, as on pod create.
- ``GET /v2/clusters/{id}/pods`` lists the member pods, each with ``cluster: {id, rank, ip}``;
  ``rank`` is the node rank (0 the primary). Members are hidden from ``GET /v2/pods`` and
  cannot be deleted through the pod routes (409): one ``DELETE /v2/clusters/{id}`` (204)
  deletes the cluster with every member; a 404 afterwards means gone.
- Every node's env carries ``MASTER_ADDR``/``MASTER_PORT`` (the primary's overlay address and
  a port), ``NODE_RANK``, ``NUM_NODES``, ``NUM_TRAINERS`` (GPUs per node) and ``WORLD_SIZE``;
  inter-node traffic must use the ``ens1`` interface (``NCCL_SOCKET_IFNAME=ens1``).
- Price and stock come from the catalog with ``product=CLUSTER``; cost from
  ``GET /v2/billing/clusters?clusterId=``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from thinnka.clients.runpod.rest import RestRunpod, _offer, _pod_from_v2
from thinnka.clients.runpod.types import GpuOffer, Pod
from thinnka.errors import NotFoundError

__all__ = ["Cluster", "ClusterNode", "ClusterSpec", "RestClusters"]

_GONE = ("TERMINATED",)


@dataclass(frozen=True)
class ClusterSpec:
    """What to create: ``pod_count`` identical nodes of ``gpu_count_per_pod`` GPUs."""

    name: str
    image: str
    gpu_type_id: str
    gpu_count_per_pod: int
    pod_count: int
    container_disk_gb: int
    volume_gb: int
    env: Mapping[str, str]
    start_command: str = ""
    volume_mount_path: str = "/workspace"


@dataclass(frozen=True)
class ClusterNode:
    """One member pod with its node rank (0 is the primary) and overlay address."""

    rank: int | None
    ip: str | None
    pod: Pod


@dataclass(frozen=True)
class Cluster:
    id: str
    name: str
    pod_total: int
    by_status: Mapping[str, int] = field(default_factory=dict)
    primary_pod_id: str | None = None
    data_center: str | None = None

    @property
    def all_running(self) -> bool:
        return self.pod_total > 0 and self.by_status.get("RUNNING", 0) == self.pod_total


class RestClusters:
    """Cluster calls on one ``RestRunpod`` (its key, retries, rate pacing and errors)."""

    def __init__(self, api: RestRunpod) -> None:
        self._api = api

    def cluster_offers(self, gpu_count_per_pod: int) -> list[GpuOffer]:
        """GPU types sold as clusters, priced and stocked for nodes of that many GPUs."""
        params = {
            "include": "AVAILABILITY",
            "product": "CLUSTER",
            "count": gpu_count_per_pod,
            "cloud": "SECURE",  # clusters have no cloud field: they are Secure Cloud
        }
        items = (self._api._get("/catalog/gpus", "catalog", params) or {}).get("gpus") or []
        return [
            _offer([("SECURE", item)], gpu_count_per_pod)
            for item in items
            if item.get("id") and item.get("id") != "unknown"
        ]

    def create_cluster(self, spec: ClusterSpec) -> Cluster:
        """Create; ``CapacityError`` (a 400) when the type has no room for the cluster."""
        body = cluster_body(spec)
        call: Callable[[], Cluster] = lambda: _cluster(  # noqa: E731
            self._api._json(self._api._send("POST", "/clusters", "create", body=body))
        )
        created: Cluster = self._api._retrying_create(call)()
        return created

    def get_cluster(self, cluster_id: str) -> Cluster | None:
        """The cluster, or None once it is gone."""
        try:
            return _cluster(self._api._get(f"/clusters/{quote(cluster_id, safe='')}", "read"))
        except NotFoundError:
            return None

    def list_clusters(self) -> list[Cluster]:
        data = self._api._get("/clusters", "read") or {}
        return [_cluster(item) for item in data.get("clusters") or []]

    def nodes(self, cluster_id: str) -> list[ClusterNode]:
        """The member pods by node rank (unranked last); empty once the cluster is gone."""
        try:
            data = self._api._get(f"/clusters/{quote(cluster_id, safe='')}/pods", "read")
        except NotFoundError:
            return []
        items = data.get("pods") if isinstance(data, dict) else data
        found = []
        for item in items or []:
            pod = _pod_from_v2(item)
            if pod.desired_status in _GONE:
                continue
            member = item.get("cluster") or {}
            rank = member.get("rank")
            found.append(
                ClusterNode(int(rank) if rank is not None else None, member.get("ip"), pod)
            )
        return sorted(found, key=lambda n: (n.rank is None, n.rank or 0))

    def delete_cluster(self, cluster_id: str) -> None:
        """Delete the cluster and all its pods; ``NotFoundError`` when it does not exist."""
        path = f"/clusters/{quote(cluster_id, safe='')}"
        call: Callable[[], object] = lambda: self._api._send("DELETE", path, "delete")  # noqa: E731
        self._api._retrying(call)()

    def billed_cost(self, cluster_id: str) -> float | None:
        """What Runpod billed for the cluster (all nodes), or None while it has no records."""
        params = {"clusterId": cluster_id, "bucketSize": "day"}
        data = self._api._json(
            self._api._send("GET", "/billing/clusters", "billing", params=params)
        )
        records = (data or {}).get("records") or []
        if not records:
            return None
        return round(sum(float(r.get("totalAmount") or 0.0) for r in records), 6)


def cluster_body(spec: ClusterSpec) -> dict[str, Any]:
    """The closed ``POST /v2/clusters`` body (an unknown key is a 422)."""
    body: dict[str, Any] = {
        "name": spec.name,
        "type": "TRAINING",
        "compute": {
            "gpuTypeId": spec.gpu_type_id,
            "gpuCountPerPod": max(1, spec.gpu_count_per_pod),
            "podCount": spec.pod_count,
        },
        "image": spec.image,
        "disk": spec.container_disk_gb,
        "ports": ["22/tcp"],  # without it no node has a public SSH endpoint
        "env": dict(spec.env),
        "startSsh": True,
    }
    if spec.start_command:
        body["args"] = spec.start_command
    if spec.volume_gb > 0:
        size = max(10, math.ceil(spec.volume_gb))
        body["mounts"] = {"persistent": {"size": size, "path": spec.volume_mount_path}}
    return body


def _cluster(data: dict[str, Any]) -> Cluster:
    pods = data.get("pods") or {}
    primary = data.get("primary") or {}
    by_status = pods.get("byStatus") or {}
    return Cluster(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        pod_total=int(pods.get("total") or 0),
        by_status={str(k): int(v) for k, v in by_status.items()},
        primary_pod_id=primary.get("podId"),
        data_center=data.get("dataCenterId"),
    )
