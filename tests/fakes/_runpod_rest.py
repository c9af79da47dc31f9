"""REST v2 surface of the fake Runpod (`/v2/pods`), over the same account state as GraphQL.

Why it exists: Runpod's GraphQL is scheduled for retirement and REST v2 is its successor
(doc §0, §6.2), so a client may speak either; both must see the same pods. Shapes follow doc
§1.3 and §6.2: strict create bodies (422 on unknown keys), problem+json errors, `GET /v2/pods`
ignoring every query parameter (a `?name=` filter is *not* honoured, like the real one).
"""

from __future__ import annotations

from typing import Any

from tests.fakes._runpod_model import Account, Pod
from tests.fakes._runpod_records import UNAUTHORIZED, RunpodError
from tests.fakes._runpod_schema import iso_time
from tests.fakes._runpod_state import World

__all__ = ["handle_v2", "render_v2"]

_PROBLEM = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
}
_ACTIONS = ("start", "stop", "restart", "terminate")
# Allowed keys of the strict create body, per nested object ("$" is the top level).
_SHAPE: dict[str, set[str]] = {
    "$": {
        "name",
        "image",
        "gpu",
        "cpu",
        "cloud",
        "dataCenterIds",
        "disk",
        "ports",
        "env",
        "args",
        "registry",
        "mounts",
        "startSsh",
        "startJupyter",
        "globalNetworking",
        "templateId",
    },
    "$.gpu": {"id", "count", "allowedCudaVersions", "minCudaVersion"},
    "$.mounts": {"persistent", "network"},
    "$.mounts.persistent": {"size", "path"},
}

V2Reply = tuple[int, dict[str, Any] | None, str]


def problem(status: int, detail: str, errors: list[str] | None = None) -> V2Reply:
    """An RFC 9457 body; `errors` only on 422, as the real API does."""
    body: dict[str, Any] = {
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return status, body, _PROBLEM


def handle_v2(
    world: World, method: str, path: str, body: Any, caller: tuple[Account, bool] | None
) -> V2Reply:
    """Route one `/v2/...` request; every route needs a key, writes need a full key."""
    if caller is None:
        return problem(401, "missing or invalid API key")
    account, read_only = caller
    parts = path.strip("/").split("/")  # ["v2", "pods", id?, "action"?]
    if parts[:2] != ["v2", "pods"] or len(parts) > 4:
        return problem(404, f"no route for {method} {path}")
    if method != "GET" and read_only:
        return problem(403, UNAUTHORIZED)
    try:
        if len(parts) == 2 and method == "GET":
            with world.lock:
                return (
                    200,
                    {"pods": [render_v2(world, p) for p in account.pods.values()]},
                    "application/json",
                )
        if len(parts) == 2 and method == "POST":
            return _create(world, account, body)
        pod_id = parts[2]
        if len(parts) == 3 and method == "GET":
            pod = world.get_pod(account, pod_id)
            if pod is None:
                return problem(404, f"pod {pod_id} not found")
            return 200, render_v2(world, pod), "application/json"
        if len(parts) == 3 and method == "DELETE":
            world.terminate(account, pod_id, by="rest")
            return 204, None, "application/json"
        if len(parts) == 4 and parts[3] == "action" and method == "POST":
            return _action(world, account, pod_id, body)
    except RunpodError as exc:
        return problem(exc.status, exc.message)
    return problem(404, f"no route for {method} {path}")


def _action(world: World, account: Account, pod_id: str, body: Any) -> V2Reply:
    action = body.get("action") if isinstance(body, dict) else None
    if action not in _ACTIONS:
        return problem(
            422,
            "Request validation failed.",
            ["$.action: value must be one of 'start', 'stop', 'restart', 'terminate'"],
        )
    with world.lock:
        pod = world.get_pod(account, pod_id)
        if pod is None:
            return problem(404, f"pod {pod_id} not found")
        if action not in _allowed(pod):
            return problem(
                409, f"action '{action}' is not allowed for a pod in status {pod.desired_status}"
            )
        if action == "terminate":
            world.terminate(account, pod_id, by="rest")
            return 204, None, "application/json"
        if action in ("stop", "restart"):
            world.stop(account, pod_id)
        if action in ("start", "restart"):
            world.resume(account, pod_id)
        return 200, render_v2(world, pod, starting=action != "stop"), "application/json"


def _create(world: World, account: Account, body: Any) -> V2Reply:
    if not isinstance(body, dict):
        return problem(422, "Request validation failed.", ["$: value must be an object"])
    errors = _shape_errors("$", body)
    if not isinstance(body.get("name"), str):
        errors.append("$: missing property 'name'")
    if not isinstance(body.get("image"), str) and not body.get("templateId"):
        errors.append("$: missing property 'image'")
    if errors:
        return problem(422, "Request validation failed.", errors)
    if ("gpu" in body) == ("cpu" in body):
        return problem(400, "exactly one of 'gpu' or 'cpu' must be given")
    if "cpu" in body:
        return problem(400, "CPU pods are not emulated by this fake")
    gpu, mounts = body["gpu"], body.get("mounts") or {}
    persistent = mounts.get("persistent") or {}
    network = (mounts.get("network") or [{}])[0]
    spec = {
        "name": body["name"],
        "imageName": body.get("image"),
        "gpuTypeId": gpu.get("id"),
        "gpuCount": gpu.get("count", 1),
        "cloudType": body.get("cloud") or "ALL",
        "containerDiskInGb": body.get("disk"),
        "ports": ",".join(body.get("ports") or []),
        "env": [{"key": k, "value": v} for k, v in (body.get("env") or {}).items()],
        "dockerArgs": body.get("args"),
        "volumeInGb": persistent.get("size"),
        "volumeMountPath": persistent.get("path") or network.get("path"),
        "networkVolumeId": network.get("volumeId"),
        "dataCenterId": (body.get("dataCenterIds") or [None])[0],
        "startSsh": body.get("startSsh", True),
        "templateId": body.get("templateId"),
    }
    pod = world.deploy(account, spec)
    return 201, render_v2(world, pod, starting=True), "application/json"


def _shape_errors(where: str, value: dict[str, Any]) -> list[str]:
    errors = [
        f"{where}: additional properties '{k}' not allowed" for k in value if k not in _SHAPE[where]
    ]
    for key, child in value.items():
        if f"{where}.{key}" in _SHAPE:
            if isinstance(child, dict):
                errors += _shape_errors(f"{where}.{key}", child)
            else:
                errors.append(f"{where}.{key}: value must be an object")
    return errors


def _allowed(pod: Pod) -> list[str]:
    return (
        ["stop", "restart", "terminate"]
        if pod.desired_status == "RUNNING"
        else ["start", "terminate"]
    )


def render_v2(world: World, pod: Pod, *, starting: bool = False) -> dict[str, Any]:
    """The v2 pod object: `ssh.proxy` always set, `ssh.direct` and `runtime` only once booted
    (never in the answer to the create or start that began the boot)."""
    with world.lock:
        booted = None if starting else world.booted_at(pod)
        ports = world.runtime_ports(pod) if booted is not None else []
        direct = next((m for m in ports if m.is_ip_public and m.private_port == 22), None)
        return {
            "id": pod.id,
            "name": pod.name,
            "status": pod.desired_status,
            "actions": _allowed(pod),
            "image": pod.image_name,
            "args": pod.docker_args,
            "disk": pod.container_disk_in_gb,
            "ports": [p for p in pod.ports.split(",") if p],
            "env": pod.env_dict(),
            "mounts": (
                {"persistent": {"size": pod.volume_in_gb, "path": pod.volume_mount_path}}
                if pod.volume_in_gb
                else {}
            ),
            "gpu": {"id": pod.gpu.id, "count": pod.gpu_count},
            "cloud": "SECURE" if pod.secure else "COMMUNITY",
            "dataCenterId": pod.inputs.get("dataCenterId") or "US-KS-2",
            "cudaVersion": "12.8",
            "cost": pod.cost_per_hr,
            "createdAt": iso_time(pod.created_at),
            "startedAt": iso_time(pod.last_started_at),
            "template": None,
            "locked": pod.locked,
            "registry": None,
            "globalNetworking": {"enabled": False},
            "runtime": None
            if booted is None
            else {
                "uptime": int(world.now() - booted),
                "cpu": None,
                "memory": None,
                "gpus": [],
                "ports": [
                    {"private": m.private_port, "public": m.public_port, "type": m.type, "ip": m.ip}
                    for m in ports
                ],
            },
            "ssh": {
                "proxy": {
                    "host": "ssh.runpod.io",
                    "port": 22,
                    "username": pod.pod_host_id,
                    "command": f"ssh {pod.pod_host_id}@ssh.runpod.io",
                },
                "direct": None
                if direct is None
                else {
                    "host": direct.ip,
                    "port": direct.public_port,
                    "username": "root",
                    "command": f"ssh root@{direct.ip} -p {direct.public_port}",
                },
            },
        }
