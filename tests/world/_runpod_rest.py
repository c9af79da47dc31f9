"""REST v2 surface of the fake Runpod, over the same account state as GraphQL.

Why it exists: Runpod retired REST v1 and retires GraphQL in early 2027; REST v2 is the
successor (docs/runpod.md), so a client may speak either and both must see the same pods. This
module routes and enforces the documented rules: every route needs a key (401 without
rate-limit headers), closed bodies (422 naming the field, `_runpod_v2schema.py`), cross-field
400s, scripted capacity per (GPU, cloud, data centers, CUDA) with the exact no-capacity text,
402 and 403 switches, 409 for actions the pod's status does not allow, 204 deletes after which
the pod is a 404, and rate-limit headers with 429s once a window is spent. `GET /v2/pods`
ignores every query parameter, like the real one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote

from tests.world._runpod_clusters import (
    cluster_billing,
    cluster_catalog,
    handle_clusters,
    hidden_member,
    member_view,
)
from tests.world._runpod_model import Account
from tests.world._runpod_records import CATALOG, NO_CAPACITY, RunpodError, gpu_by_id
from tests.world._runpod_state import World
from tests.world._runpod_v2render import (
    BUCKETS,
    DATA_CENTERS,
    HOST_CUDA,
    allowed_actions,
    billing_records,
    render_gpu_v2,
    render_v2,
)
from tests.world._runpod_v2schema import action_errors, create_errors, create_rule_error
from tests.world._runpod_volumes import handle_volumes, mount_error, volume_data_center

__all__ = ["TITLES", "V2Reply", "handle_v2", "problem"]

_JSON, _PROBLEM = "application/json", "application/problem+json"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_INVALID = "Request validation failed."

# (status, body or None, content type, extra headers)
V2Reply = tuple[int, dict[str, Any] | None, str, dict[str, str]]


def problem(status: int, detail: str, errors: list[str] | None = None) -> V2Reply:
    """An RFC 9457 body with `title` the reason phrase and `status` the code."""
    body: dict[str, Any] = {
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return status, body, _PROBLEM, {}


def _ok(body: dict[str, Any] | None, status: int = 200) -> V2Reply:
    return status, body, _JSON, {}


def handle_v2(
    world: World, method: str, path: str, query: str, body: Any, key: str | None
) -> V2Reply:
    """Authenticate, rate-limit, route one `/v2/...` request; add the rate-limit headers."""
    caller = world.resolve_key(key)
    if caller is None or key is None:
        return problem(401, "missing bearer token" if not key else "invalid bearer token")
    allowed, headers = world.limiter.take(key, world.now())
    if not allowed:
        status, payload, kind, _ = problem(429, "rate limit exceeded for the minute window")
        return status, payload, kind, headers
    status, payload, kind, extra = _route(world, method, path, query, body, caller)
    return status, payload, kind, {**headers, **extra}


def _route(
    world: World, method: str, path: str, query: str, body: Any, caller: tuple[Account, bool]
) -> V2Reply:
    account, read_only = caller
    parts = [unquote(p) for p in path.strip("/").split("/")][1:]  # drop "v2"
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    if method != "GET" and read_only:
        return problem(403, "access denied")
    try:
        if parts[:1] == ["pods"]:
            return _pods(world, account, method, parts[1:], body, params)
        if parts[:1] == ["network-volumes"]:
            status, answer = handle_volumes(world, account, method, parts[1:], body)
            if status >= 400:
                return problem(status, answer["detail"], answer.get("errors"))
            return _ok(answer, status)
        if parts[:1] == ["clusters"]:
            status, reply = handle_clusters(world, account, method, parts[1:], body)
            if status >= 400:
                return problem(status, str((reply or {})["detail"]), (reply or {}).get("errors"))
            return _ok(reply, status)
        if parts == ["billing", "clusters"] and method == "GET":
            records = cluster_billing(world, account, params.get("clusterId"))
            return _ok({"records": records, "metadata": {"recordCount": len(records)}})
        if parts[:2] == ["catalog", "gpus"] and method == "GET" and len(parts) <= 3:
            return _catalog(world, parts[2] if len(parts) == 3 else None, params)
        if parts == ["billing", "pods"] and method == "GET":
            return _billing(world, account, params)
        if parts == ["account", "ssh-keys"] and method in ("GET", "PUT"):
            return _ssh_keys(world, account, method, body)
    except RunpodError as exc:
        return problem(exc.status, exc.message)
    return problem(404, "resource not found")


def _pods(
    world: World, account: Account, method: str, rest: list[str], body: Any, params: dict[str, str]
) -> V2Reply:
    if not rest and method == "GET":
        members = params.get("includeClusterPods") == "true"  # the one parameter it reads
        with world.lock:
            pods = [p for p in account.pods.values() if members or not hidden_member(world, p.id)]
            return _ok({"pods": [member_view(world, p) for p in pods]})
    if not rest and method == "POST":
        return _create(world, account, body)
    if len(rest) == 1 and method in ("GET", "DELETE"):
        pod = world.get_pod(account, rest[0])
        if pod is None:
            return problem(404, "resource not found")
        if method == "GET":
            return _ok(member_view(world, pod))
        if hidden_member(world, pod.id):
            return problem(409, "pod is a cluster member: delete its cluster instead")
        world.terminate(account, pod.id, by="rest")
        return _ok(None, 204)
    if len(rest) == 2 and rest[1] == "action" and method == "POST":
        return _action(world, account, rest[0], body)
    return problem(404, "resource not found")


def _action(world: World, account: Account, pod_id: str, body: Any) -> V2Reply:
    errors = action_errors(body)
    if errors:
        return problem(422, _INVALID, errors)
    action = body["action"]
    with world.lock:
        pod = world.get_pod(account, pod_id)
        if pod is None:
            return problem(404, "resource not found")
        if action not in allowed_actions(world, pod):
            return problem(409, f"action '{action}' is not allowed in the pod's current status")
        if action == "terminate":
            world.terminate(account, pod_id, by="rest")
            return _ok(None, 204)
        if action in ("stop", "restart"):
            world.stop(account, pod_id)
        if action in ("start", "restart"):
            world.resume(account, pod_id)
        return _ok(render_v2(world, pod, fresh=action != "stop"))


def _create(world: World, account: Account, body: Any) -> V2Reply:
    errors = create_errors(body) if isinstance(body, dict) else ["$: value must be an object"]
    if errors:
        return problem(422, _INVALID, errors)
    rule = create_rule_error(body)
    if rule is not None:
        return problem(400, rule)
    if "cpu" in body:
        return problem(400, "CPU pods are not emulated by this fake")
    gpu_in = body["gpu"]
    gpu = gpu_by_id(gpu_in["id"])
    if gpu is None or gpu.id == "unknown":
        return problem(400, f"GPU type '{gpu_in['id']}' does not exist")
    if world.v2.balance_exhausted:
        return problem(402, "insufficient balance to create this pod")
    if gpu.id in world.v2.forbidden_pools:
        return problem(403, "cannot access the requested pool")
    cloud = body.get("cloud") or "SECURE"  # an omitted cloud is SECURE; there is no "any"
    if not _placeable(world, body, gpu_in, cloud):
        return problem(400, NO_CAPACITY)
    mounting = mount_error(world, account, body, cloud)
    if mounting is not None:
        return problem(400, NO_CAPACITY if mounting == "capacity" else mounting)
    count = gpu_in.get("count", 1)
    mounts = body.get("mounts") or {}
    persistent = mounts.get("persistent") or {}
    network = (mounts.get("network") or [{}])[0]
    spec = {
        "name": body["name"],
        "imageName": body.get("image"),
        "gpuTypeId": gpu.id,
        "gpuCount": count,
        "cloudType": cloud,
        "containerDiskInGb": body.get("disk"),
        "ports": ",".join(body.get("ports") or []),
        "env": [{"key": k, "value": v} for k, v in (body.get("env") or {}).items()],
        "dockerArgs": body.get("args"),
        "volumeInGb": persistent.get("size"),
        "volumeMountPath": persistent.get("path") or network.get("path"),
        "networkVolumeId": network.get("volumeId"),
        "dataCenterId": volume_data_center(world, network.get("volumeId"))
        or (body.get("dataCenterIds") or [None])[0],
        "minVcpuCount": gpu_in.get("minVcpuCountPerGpu", 0) * count,
        "minMemoryInGb": gpu_in.get("minRamPerGpu", 0) * count,
        "startSsh": body.get("startSsh", False),  # v2's default: no SSH service
        "templateId": body.get("templateId"),
    }
    pod = world.deploy(account, spec)
    return _ok(render_v2(world, pod, fresh=True), 201)


def _placeable(world: World, body: dict[str, Any], gpu_in: dict[str, Any], cloud: str) -> bool:
    """False where v2 answers the no-capacity 400: a closed cloud, data centers, CUDA, filters."""
    gpu = gpu_by_id(gpu_in["id"])
    assert gpu is not None
    if (gpu.id, cloud) in world.v2.closed:
        return False
    wanted_dcs = body.get("dataCenterIds") or []
    if wanted_dcs and not set(wanted_dcs) & {dc for dc, _ in DATA_CENTERS}:
        return False
    cuda = gpu_in.get("allowedCudaVersions")
    if cuda and HOST_CUDA not in cuda:
        return False
    floor = gpu_in.get("minCudaVersion")
    if floor and tuple(map(int, floor.split("."))) > tuple(map(int, HOST_CUDA.split("."))):
        return False
    if gpu_in.get("minRamPerGpu", 0) > gpu.memory_per_gpu:
        return False
    return bool(gpu_in.get("minVcpuCountPerGpu", 0) <= gpu.vcpu_per_gpu)


def _catalog(world: World, gpu_id: str | None, params: dict[str, str]) -> V2Reply:
    include = params.get("include")
    if include is not None and include != "AVAILABILITY":
        return problem(400, "include must be AVAILABILITY")
    if (include is None) != ("product" not in params):
        return problem(400, "product is required with include, and only valid with it")
    if include is None and ({"count", "cloud", "countryCodes", "cudaVersions"} & params.keys()):
        return problem(400, "count, cloud, countryCodes and cudaVersions need include")
    count_text = params.get("count", "1")
    if not count_text.isdigit() or int(count_text) < 1:
        return problem(422, _INVALID, ["count: value must be an integer >= 1"])
    cloud = params.get("cloud", "SECURE")
    if cloud not in ("SECURE", "COMMUNITY"):
        return problem(422, _INVALID, ["cloud: value must be one of 'SECURE', 'COMMUNITY'"])
    products = params["product"].split(",") if include is not None else []
    if products == ["CLUSTER"]:
        gpus = cluster_catalog(world, int(count_text), gpu_id)
        if gpu_id is not None:
            return _ok(gpus[0]) if gpus else problem(404, "resource not found")
        return _ok({"gpus": gpus})
    if include is not None and "POD" not in products:
        return problem(400, "this emulator serves product=POD or CLUSTER only")
    with world.lock:
        gpus = [
            render_gpu_v2(world, g, count=int(count_text), cloud=cloud, include=include is not None)
            for g in CATALOG
            if g.id != "unknown" and (gpu_id is None or g.id == gpu_id)
        ]
    if gpu_id is not None:
        return _ok(gpus[0]) if gpus else problem(404, "resource not found")
    return _ok({"gpus": gpus})


def _billing(world: World, account: Account, params: dict[str, str]) -> V2Reply:
    from datetime import datetime

    bucket = params.get("bucketSize", "day")
    if bucket not in BUCKETS:
        return problem(422, _INVALID, ["bucketSize: value must be one of " + ", ".join(BUCKETS)])
    now = world.wall()
    try:
        start = (
            datetime.fromisoformat(params["startTime"]).timestamp()
            if "startTime" in params
            else now - 30 * 86400
        )
        end = datetime.fromisoformat(params["endTime"]).timestamp() if "endTime" in params else now
    except ValueError:
        return problem(422, _INVALID, ["startTime/endTime: value must be an RFC 3339 timestamp"])
    if "lastN" in params:
        if "startTime" in params or "endTime" in params:
            return problem(400, "lastN cannot be combined with startTime or endTime")
        start = now - int(params["lastN"]) * BUCKETS[bucket]
    with world.lock:
        records = billing_records(world, account.id, params.get("podId"), bucket, start, end)
    totals = {
        name: round(sum(r[name] for r in records), 6)
        for name in ("totalAmount", "gpuAmount", "cpuAmount", "diskAmount")
    }
    meta = {
        "query": {"bucketSize": bucket, "podId": params.get("podId")},
        "recordCount": len(records),
        "uniquePodCount": len({r["podId"] for r in records}),
        "totals": totals,
    }
    return _ok({"records": records, "metadata": meta})


def _ssh_keys(world: World, account: Account, method: str, body: Any) -> V2Reply:
    if method == "PUT":
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            return problem(422, _INVALID, ["$.keys: value must be an array of strings"])
        with world.lock:
            account.pub_key = "\n".join(keys)
    return _ok({"keys": [k for k in account.pub_key.splitlines() if k.strip()]})
