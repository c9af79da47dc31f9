"""The closed request bodies of Runpod REST v2, checked the way the real API checks them.

Why a table and not jsonschema: the real answers name the field in a JSON-path-like form
(`$.gpu: additional properties 'bogus' not allowed`, `$.action: value must be one of ...`),
and clients (thinnka among them) are tested on those texts. Every object is closed (unknown
keys are a 422 at any depth), every field has its documented type and bounds
(`CreatePodRequest`, `CreateGpuConfig`, `CreateCpuConfig`, `Mounts`), and cross-field rules
that the spec enforces "at the handler" are 400s, checked separately.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["action_errors", "create_errors", "create_rule_error"]

Check = Callable[[str, Any], list[str]]

_CUDA = re.compile(r"^\d+\.\d+$")
_PORT = re.compile(r"^\d{1,5}/(tcp|http|udp)$")


def _string(min_length: int = 0, pattern: re.Pattern[str] | None = None) -> Check:
    def check(where: str, value: Any) -> list[str]:
        if not isinstance(value, str):
            return [f"{where}: value must be a string"]
        if len(value) < min_length:
            return [f"{where}: length must be >= {min_length}"]
        if pattern is not None and not pattern.match(value):
            return [f"{where}: value does not match pattern {pattern.pattern}"]
        return []

    return check


def _integer(minimum: int = 1, power_of_two: bool = False) -> Check:
    def check(where: str, value: Any) -> list[str]:
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: value must be an integer"]
        if value < minimum:
            return [f"{where}: value must be >= {minimum}"]
        if power_of_two and value & (value - 1):
            return [f"{where}: value must be a power of 2"]
        return []

    return check


def _boolean(where: str, value: Any) -> list[str]:
    return [] if isinstance(value, bool) else [f"{where}: value must be a boolean"]


def _enum(*allowed: str) -> Check:
    listed = ", ".join(f"'{a}'" for a in allowed)

    def check(where: str, value: Any) -> list[str]:
        return [] if value in allowed else [f"{where}: value must be one of {listed}"]

    return check


def _array(item: Check, max_items: int | None = None) -> Check:
    def check(where: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            return [f"{where}: value must be an array"]
        if max_items is not None and len(value) > max_items:
            return [f"{where}: at most {max_items} items"]
        return [e for i, v in enumerate(value) for e in item(f"{where}[{i}]", v)]

    return check


def _string_map(where: str, value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: value must be an object"]
    return [
        f"{where}.{k}: value must be a string" for k, v in value.items() if not isinstance(v, str)
    ]


def _nullable(check: Check) -> Check:
    return lambda where, value: [] if value is None else check(where, value)


def _object(fields: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    def check(where: str, value: Any) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: value must be an object"]
        errors = [
            f"{where}: additional properties '{k}' not allowed" for k in value if k not in fields
        ]
        errors += [f"{where}: missing property '{k}'" for k in required if k not in value]
        for key, child in value.items():
            if key in fields:
                errors += fields[key](f"{where}.{key}", child)
        return errors

    return check


_GPU = _object(
    {
        "id": _string(1),
        "count": _integer(1),
        "allowedCudaVersions": _array(_string(pattern=_CUDA)),
        "minCudaVersion": _string(pattern=_CUDA),
        "minRamPerGpu": _integer(1),
        "minVcpuCountPerGpu": _integer(1),
    },
    required=("id",),
)
_CPU = _object({"id": _string(1), "vcpuCount": _integer(2, power_of_two=True)}, required=("id",))
_MOUNTS = _object(
    {
        "persistent": _object(
            {"size": _integer(10), "path": _string(1)}, required=("size", "path")
        ),
        "network": _array(
            _object({"volumeId": _string(1), "path": _string(1)}, required=("volumeId", "path")),
            max_items=1,
        ),
    }
)
_CREATE = _object(
    {
        "name": _string(1),
        "image": _string(1),
        "templateId": _string(1),
        "gpu": _GPU,
        "cpu": _CPU,
        "cloud": _enum("SECURE", "COMMUNITY"),
        "dataCenterIds": _array(_string(1)),
        "disk": _integer(1),
        "ports": _array(_string(pattern=_PORT)),
        "env": _string_map,
        "args": _string(),
        "registry": _nullable(_string()),
        "mounts": _MOUNTS,
        "startSsh": _boolean,
        "startJupyter": _boolean,
        "globalNetworking": _boolean,
    },
    required=("name",),
)
_ACTION = _object({"action": _enum("start", "stop", "restart", "terminate")}, required=("action",))


def create_errors(body: Any) -> list[str]:
    """The 422 `errors[]` for a create body (empty when it validates)."""
    errors = _CREATE("$", body)
    if isinstance(body, dict) and "image" not in body and "templateId" not in body:
        errors.append("$: missing property 'image'")
    return errors


def create_rule_error(body: dict[str, Any]) -> str | None:
    """The 400 `detail` for a cross-field rule a valid body breaks (docs/runpod.md)."""
    if ("gpu" in body) == ("cpu" in body):
        return "exactly one of 'gpu' or 'cpu' must be given"
    mounts = body.get("mounts") or {}
    if "persistent" in mounts and "network" in mounts:
        return "'mounts.persistent' and 'mounts.network' cannot be combined"
    if "persistent" in mounts and "cpu" in body:
        return "'mounts.persistent' is not allowed for CPU pods"
    gpu = body.get("gpu") or {}
    if gpu.get("allowedCudaVersions") and "minCudaVersion" in gpu:
        return "'gpu.allowedCudaVersions' and 'gpu.minCudaVersion' cannot be combined"
    return None


def action_errors(body: Any) -> list[str]:
    return _ACTION("$", body)
