"""GraphQL surface of the fake Runpod: request handling, resolvers and the error envelope.

Why graphql-core and SDL instead of matching strings: clients send both inline literals (the
official SDK formats values straight into the query text) and `variables`, and the real server
rejects unknown input fields with HTTP 400 before any resolver runs. Parsing and validating
against a real schema gives all three for free. Type and field names are the real API's (those
real clients use); the SDK 1.12.0 queries validate against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    execute,
    get_operation_ast,
    parse,
    validate,
)

from tests.world._runpod_model import Account, Pod
from tests.world._runpod_records import (
    CATALOG,
    UNAUTHORIZED,
    GpuSpec,
    RunpodError,
    price_for,
    stock_status,
)
from tests.world._runpod_sdl import SCHEMA
from tests.world._runpod_state import World

__all__ = ["GraphQLReply", "iso_time", "render_gpu", "render_pod", "run_graphql"]


_PUBLIC_FIELDS = frozenset(
    {"gpuTypes", "dataCenters", "countryCodes", "__typename", "__schema", "__type"}
)
_DATA_CENTERS = (("US-KS-2", "United States"), ("EU-RO-1", "Romania"), ("CA-MTL-1", "Canada"))
_AVAILABLE_COUNTS = (1, 2, 4, 8)


@dataclass(frozen=True)
class GraphQLReply:
    """An HTTP status plus the JSON body to send for one GraphQL request."""

    status: int
    body: dict[str, Any]


def run_graphql(world: World, payload: Any, caller: tuple[Account, bool] | None) -> GraphQLReply:
    """Validate (400), authorize (401), execute (200 + data/errors) one request body."""
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return _fail(
            400,
            "POST body missing, invalid Content-Type, or JSON object has no keys.",
            "BAD_REQUEST",
        )
    if not isinstance(payload.get("variables") or {}, dict):
        return _fail(400, "`variables` must be a JSON object.", "BAD_REQUEST")
    try:
        document = parse(payload["query"])
    except GraphQLError as exc:
        return GraphQLReply(400, {"errors": [_format(exc, "GRAPHQL_PARSE_FAILED")]})
    problems = validate(SCHEMA, document)
    if problems:
        return GraphQLReply(
            400, {"errors": [_format(e, "GRAPHQL_VALIDATION_FAILED") for e in problems]}
        )
    operation_name = payload.get("operationName")
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return _fail(400, "Could not determine what operation to execute.", "BAD_REQUEST")
    touched = _root_fields(document, operation.selection_set)
    needs_key = operation.operation != OperationType.QUERY or not touched <= _PUBLIC_FIELDS
    if needs_key and caller is None:
        return _fail(401, UNAUTHORIZED, "UNAUTHENTICATED")
    result = execute(
        SCHEMA,
        document,
        root_value=_Root(world, caller),
        variable_values=payload.get("variables") or None,
        operation_name=operation_name,
    )
    if result.errors and result.data is None and all(e.path is None for e in result.errors):
        return GraphQLReply(400, {"errors": [_format(e, "BAD_USER_INPUT") for e in result.errors]})
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [_format(e, None) for e in result.errors]
    return GraphQLReply(200, body)


def _fail(status: int, message: str, code: str) -> GraphQLReply:
    return GraphQLReply(status, {"errors": [{"message": message, "extensions": {"code": code}}]})


def _format(error: GraphQLError, code: str | None) -> dict[str, Any]:
    formatted = dict(error.formatted)
    if code is None:  # a resolver error: Runpod's INTERNAL_SERVER_ERROR, except plain auth
        original = error.original_error
        if isinstance(original, RunpodError) and original.message == UNAUTHORIZED:
            formatted.pop("locations", None)
            return formatted
        code = "INTERNAL_SERVER_ERROR"
    formatted["extensions"] = {**formatted.get("extensions", {}), "code": code}
    return formatted


def _root_fields(document: DocumentNode, selection_set: SelectionSetNode) -> set[str]:
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    names: set[str] = set()
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            names.add(selection.name.value)
        elif isinstance(selection, InlineFragmentNode):
            names |= _root_fields(document, selection.selection_set)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
            names |= _root_fields(document, fragments[selection.name.value].selection_set)
    return names


class _Root:
    """Root value: graphql-core's default resolver calls these methods as `(info, **args)`."""

    def __init__(self, world: World, caller: tuple[Account, bool] | None) -> None:
        self.world = world
        self.account, self.read_only = caller if caller else (None, False)

    def _writer(self) -> Account:
        if self.account is None or self.read_only:
            raise RunpodError(UNAUTHORIZED, status=403)
        return self.account

    def _reader(self) -> Account:
        if self.account is None:
            raise RunpodError(UNAUTHORIZED, status=401)
        return self.account

    # ---- queries -----------------------------------------------------------------------------
    def gpuTypes(self, _info: Any, input: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        wanted = input or {}
        ids = set(wanted.get("ids") or []) | ({wanted["id"]} if wanted.get("id") else set())
        return [render_gpu(self.world, g) for g in CATALOG if not ids or g.id in ids]

    def pod(self, _info: Any, input: dict[str, Any]) -> dict[str, Any] | None:
        pod = self.world.get_pod(self._reader(), input["podId"])
        return render_pod(self.world, pod) if pod else None

    def myself(self, _info: Any) -> dict[str, Any]:
        account = self._reader()
        with self.world.lock:
            pods = [render_pod(self.world, p) for p in account.pods.values()]
        return {
            "id": account.id,
            "email": account.email,
            "pubKey": account.pub_key,
            "pods": pods,
            "networkVolumes": [],
        }

    def dataCenters(self, _info: Any) -> list[dict[str, Any]]:
        availability = [
            {
                "gpuTypeId": g.id,
                "displayName": g.display_name,
                "stockStatus": stock_status(self.world.available(g.id), 1, g.max_gpu_count),
            }
            for g in CATALOG
        ]
        return [
            {
                "id": dc,
                "name": dc,
                "location": where,
                "listed": True,
                "gpuAvailability": availability,
            }
            for dc, where in _DATA_CENTERS
        ]

    def countryCodes(self, _info: Any) -> list[str]:
        return ["CA", "CZ", "NL", "NO", "RO", "SE", "US"]

    # ---- mutations ---------------------------------------------------------------------------
    def podFindAndDeployOnDemand(
        self, _info: Any, input: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        pod = self.world.deploy(self._writer(), input or {})
        return render_pod(self.world, pod, starting=True)

    def podRentInterruptable(
        self, _info: Any, input: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        spec = input or {}
        pod = self.world.deploy(self._writer(), spec, bid_per_gpu=spec.get("bidPerGpu"))
        return render_pod(self.world, pod, starting=True)

    def podStop(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        return render_pod(self.world, self.world.stop(self._writer(), input["podId"]))

    def podResume(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        pod = self.world.resume(self._writer(), input["podId"], input.get("gpuCount"))
        return render_pod(self.world, pod, starting=True)

    def podBidResume(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        pod = self.world.resume(self._writer(), input["podId"], input.get("gpuCount"))
        return render_pod(self.world, pod, starting=True)

    def podTerminate(self, _info: Any, input: dict[str, Any]) -> None:
        self.world.terminate(self._writer(), input["podId"])

    def updateUserSettings(self, _info: Any, input: dict[str, Any] | None = None) -> dict[str, Any]:
        account = self._writer()
        if input and input.get("pubKey") is not None:
            account.pub_key = input["pubKey"]
        return self.myself(_info)


def render_gpu(world: World, gpu: GpuSpec) -> dict[str, Any]:
    """A GpuType object; `lowestPrice` stays a callable so its arguments reach it."""

    def lowest_price(_info: Any, input: dict[str, Any] | None = None) -> dict[str, Any]:
        wanted = input or {}
        count = int(wanted.get("gpuCount") or 1)
        secure = wanted.get("secureCloud")
        cloud = "ALL" if secure is None else ("SECURE" if secure else "COMMUNITY")
        available = world.available(gpu.id)
        price = price_for(gpu, cloud)
        status = stock_status(available, count, gpu.max_gpu_count) if price is not None else None
        offer = status is not None
        return {
            "gpuName": gpu.display_name,
            "gpuTypeId": gpu.id,
            "minimumBidPrice": price_for(gpu, cloud, spot=True) if offer else None,
            "uninterruptablePrice": price if offer else None,
            "stockStatus": status,
            "availableGpuCounts": [
                c for c in _AVAILABLE_COUNTS if c <= gpu.max_gpu_count and c <= available
            ],
            "minVcpu": gpu.vcpu_per_gpu * count if offer else None,
            "minMemory": gpu.memory_per_gpu * count if offer else None,
            "totalCount": available,
            "rentedCount": 0,
            "rentalPercentage": 0.0,
            "countryCode": wanted.get("countryCode"),
            "supportPublicIp": True,
            "compliance": [],
        }

    return {
        "id": gpu.id,
        "displayName": gpu.display_name,
        "manufacturer": gpu.manufacturer,
        "memoryInGb": gpu.memory_in_gb,
        "cudaCores": gpu.cuda_cores,
        "secureCloud": gpu.secure_price is not None,
        "communityCloud": gpu.community_price is not None,
        "securePrice": gpu.secure_price,
        "communityPrice": gpu.community_price,
        "secureSpotPrice": gpu.secure_spot_price,
        "communitySpotPrice": gpu.community_spot_price,
        "oneWeekPrice": None,
        "oneMonthPrice": None,
        "threeMonthPrice": None,
        "sixMonthPrice": None,
        "maxGpuCount": gpu.max_gpu_count,
        "maxGpuCountSecureCloud": gpu.max_gpu_count if gpu.secure_price is not None else 0,
        "maxGpuCountCommunityCloud": gpu.max_gpu_count if gpu.community_price is not None else 0,
        "minPodGpuCount": 1,
        "clusterPrice": None,
        "nodeGroupDatacenters": [],
        "lowestPrice": lowest_price,
    }


def render_pod(world: World, pod: Pod, *, starting: bool = False) -> dict[str, Any]:
    """The GraphQL `Pod` shape: env as K=V strings, runtime null until booted.

    `starting` is for the answer of a create/resume mutation, which always precedes the boot
    (the real API answers `runtime: null` there even when the pod comes up quickly).
    """
    with world.lock:
        booted = None if starting else world.booted_at(pod)
        uptime = int(world.now() - booted) if booted is not None else 0
        runtime = (
            None
            if booted is None
            else {
                "uptimeInSeconds": uptime,
                "ports": [
                    {
                        "ip": m.ip,
                        "isIpPublic": m.is_ip_public,
                        "privatePort": m.private_port,
                        "publicPort": m.public_port,
                        "type": m.type,
                    }
                    for m in world.runtime_ports(pod)
                ],
                "gpus": [
                    {"id": f"GPU-{pod.host_suffix}{i}", "gpuUtilPercent": 0, "memoryUtilPercent": 0}
                    for i in range(pod.gpu_count)
                ],
                "container": {"cpuPercent": 0, "memoryPercent": 1},
            }
        )
        return {
            "id": pod.id,
            "name": pod.name,
            "desiredStatus": pod.desired_status,
            "lastStatusChange": pod.last_status_change,
            "uptimeSeconds": uptime,
            "costPerHr": pod.cost_per_hr,
            "adjustedCostPerHr": pod.cost_per_hr,
            "podType": pod.pod_type,
            "imageName": pod.image_name,
            "dockerArgs": pod.docker_args,
            "dockerId": None,
            "env": [f"{k}={v}" for k, v in pod.env],
            "ports": pod.ports,
            "port": None,
            "gpuCount": pod.gpu_count,
            "vcpuCount": pod.vcpu_count,
            "memoryInGb": pod.memory_in_gb,
            "containerDiskInGb": pod.container_disk_in_gb,
            "volumeInGb": pod.volume_in_gb,
            "volumeMountPath": pod.volume_mount_path,
            "machineId": pod.machine_id,
            "createdAt": iso_time(pod.created_at),
            "lastStartedAt": iso_time(pod.last_started_at),
            "locked": pod.locked,
            "networkVolumeId": pod.inputs.get("networkVolumeId"),
            "templateId": pod.inputs.get("templateId"),
            "clusterIp": None,
            "machine": {
                "podHostId": pod.pod_host_id,
                "gpuDisplayName": pod.gpu.display_name,
                "location": "US",
                "dataCenterId": pod.inputs.get("dataCenterId") or "US-KS-2",
                "gpuTypeId": pod.gpu.id,
                "secureCloud": pod.secure,
                "supportPublicIp": True,
                "costPerHr": pod.cost_per_hr,
            },
            "runtime": runtime,
        }


def iso_time(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds, as REST v2 and GraphQL `createdAt` carry it."""
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
