"""What the fake's REST v2 surface answers: pod objects, the GPU catalog, billing records.

Shapes follow Runpod's (docs/runpod.md): the pod has every field present, `runtime`/`ssh.direct`
null until it runs with a public 22/tcp, `ssh.proxy` null until a machine is assigned and
`template` null; the catalog has list prices per GPU, availability only with `include`, upper-case
levels and `dataCenters` omitted when there is no stock; billing has one record per pod per
bucket, bucket edges snapped.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from tests.world._runpod_model import Pod, ledger_entry
from tests.world._runpod_records import GpuSpec, price_for, stock_status
from tests.world._runpod_schema import iso_time
from tests.world._runpod_state import World

__all__ = [
    "BUCKETS",
    "DATA_CENTERS",
    "HOST_CUDA",
    "billing_records",
    "render_gpu_v2",
    "render_v2",
    "v2_status",
]

HOST_CUDA = "12.8"  # every emulated host's CUDA version
DATA_CENTERS = (("US-KS-2", "United States"), ("EU-RO-1", "Romania"), ("CA-MTL-1", "Canada"))
BUCKETS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400}
_LEVELS = {"High": "HIGH", "Medium": "MEDIUM", "Low": "LOW", None: "NONE"}


def v2_status(world: World, pod: Pod) -> str:
    """PROVISIONING (no machine yet), STARTING, RUNNING once booted; EXITED; ERROR."""
    if pod.failed:
        return "ERROR"
    if pod.desired_status != "RUNNING":
        return pod.desired_status
    if world.booted_at(pod) is not None or world.v2.running_at_once:
        return "RUNNING"
    halfway = pod.boot_from + (pod.boot_at - pod.boot_from) / 2
    return "PROVISIONING" if world.now() < halfway else "STARTING"


def _actions(status: str) -> list[str]:
    if status in ("PROVISIONING", "STARTING"):
        return ["stop", "terminate"]
    if status == "RUNNING":
        return ["stop", "restart", "terminate"]
    return ["start", "terminate"]


def allowed_actions(world: World, pod: Pod) -> list[str]:
    return _actions(v2_status(world, pod))


def _public_port(world: World, pod: Pod) -> bool:
    return pod.secure or world.v2.community_public_ip


def render_v2(world: World, pod: Pod, *, fresh: bool = False) -> dict[str, Any]:
    """`fresh` is the answer to the create or start that began a boot: it always precedes the
    boot (PROVISIONING, runtime null), as the real API answers even when pods come up fast."""
    with world.lock:
        status = v2_status(world, pod)
        booted = world.booted_at(pod) if not pod.failed else None
        if fresh:
            status, booted = ("RUNNING" if world.v2.running_at_once else "PROVISIONING"), None
        public = _public_port(world, pod)
        ports = world.runtime_ports(pod) if booted is not None else []
        direct = next(
            (
                m
                for m in ports
                if public and m.is_ip_public and m.private_port == 22 and m.type == "tcp"
            ),
            None,
        )
        machine = status not in ("PROVISIONING",) and not pod.failed
        exited = status in ("EXITED", "TERMINATED")
        return {
            "id": pod.id,
            "name": pod.name,
            "status": status,
            "actions": _actions(status),
            "image": pod.image_name,
            "args": pod.docker_args,
            "disk": pod.container_disk_in_gb,
            "ports": [p for p in pod.ports.split(",") if p],
            "env": pod.env_dict(),
            "registry": None,
            "mounts": (
                {"persistent": {"size": pod.volume_in_gb, "path": pod.volume_mount_path}}
                if pod.volume_in_gb
                else {}
            ),
            "gpu": {
                "id": pod.gpu.id,
                "count": pod.gpu_count,
                "vcpuCount": pod.vcpu_count,
                "memory": pod.memory_in_gb,
            },
            "cloud": "SECURE" if pod.secure else "COMMUNITY",
            "dataCenterId": pod.inputs.get("dataCenterId") or DATA_CENTERS[0][0],
            "cudaVersion": HOST_CUDA,
            "cost": 0.0 if exited and world.v2.exited_cost_zero else pod.cost_per_hr,
            "locked": pod.locked,
            "globalNetworking": {"enabled": False},
            "template": None,
            "createdAt": iso_time(pod.created_at),
            "startedAt": iso_time(pod.last_started_at) if pod.last_started_at else None,
            "runtime": None
            if booted is None
            else {
                "uptime": int(world.now() - booted),
                "cpu": {"util": 0},
                "memory": {"util": 1},
                "gpus": [{"util": 0, "memoryUtil": 0} for _ in range(pod.gpu_count)],
                "ports": [
                    {
                        "private": m.private_port,
                        "public": m.public_port if m.is_ip_public and public else None,
                        "type": m.type,
                        "ip": m.ip if m.is_ip_public and public else None,
                    }
                    for m in ports
                    if public or not m.is_ip_public
                ],
            },
            "ssh": {
                "proxy": {
                    "host": "ssh.runpod.io",
                    "port": 22,
                    "username": pod.pod_host_id,
                    "command": f"ssh {pod.pod_host_id}@ssh.runpod.io",
                }
                if machine
                else None,
                "direct": None
                if direct is None or status != "RUNNING"
                else {
                    "host": direct.ip,
                    "port": direct.public_port,
                    "username": "root",
                    "command": f"ssh root@{direct.ip} -p {direct.public_port}",
                },
            },
        }


def render_gpu_v2(
    world: World, gpu: GpuSpec, *, count: int, cloud: str, include: bool
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": gpu.id,
        "name": gpu.display_name,
        "manufacturer": gpu.manufacturer.upper(),
        "memory": gpu.memory_in_gb,
        "pool": None,
        "secure": gpu.secure_price is not None,
        "community": gpu.community_price is not None,
        "price": {"secure": gpu.secure_price, "community": gpu.community_price},
        "maxCount": {
            "secure": gpu.max_gpu_count if gpu.secure_price is not None else 0,
            "community": gpu.max_gpu_count if gpu.community_price is not None else 0,
        },
    }
    if not include:
        return item
    level = None
    if price_for(gpu, cloud) is not None and (gpu.id, cloud) not in world.v2.closed:
        level = stock_status(world.available(gpu.id), count, gpu.max_gpu_count)
    item["availability"] = _LEVELS[level]
    if level is not None:
        item["dataCenters"] = [
            {"id": dc, "name": name, "availability": _LEVELS[level]} for dc, name in DATA_CENTERS
        ]
    item["cudaVersions"] = [{"version": HOST_CUDA, "available": level is not None}]
    return item


def billing_records(
    world: World, account_id: str, pod_id: str | None, bucket: str, start: float, end: float
) -> list[dict[str, Any]]:
    """One record per pod per bucket in [start, end), its spend spread evenly over its life."""
    size = BUCKETS[bucket]
    start = math.floor(start / size) * size
    end = math.ceil(end / size) * size
    now, wall = world.now(), world.wall()
    records = []
    for bill in world.bills.values():
        pod = bill.pod
        if pod.account_id != account_id or (pod_id is not None and pod.id != pod_id):
            continue
        if wall - pod.created_at < world.v2.billing_delay:
            continue  # not billed yet
        entry = ledger_entry(bill, now)
        born, died = pod.created_at, entry.terminated_at or wall
        life = max(died - born, 1e-9)
        edge = max(start, math.floor(born / size) * size)
        while edge < min(end, died):
            overlap = min(edge + size, died) - max(edge, born)
            if overlap > 0:
                amount = round(entry.cost * overlap / life, 6)
                records.append(
                    {
                        "startTime": _stamp(edge),
                        "endTime": _stamp(edge + size),
                        "podId": pod.id,
                        "totalAmount": amount,
                        "gpuAmount": amount,
                        "cpuAmount": 0,
                        "diskAmount": 0,
                    }
                )
            edge += size
    return records


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
