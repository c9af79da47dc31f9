"""Network volumes of the fake Runpod (REST v2), and the pods' disks on this machine.

Volumes (``/v2/network-volumes``): list, create (closed body, 10–4096 GB, one data center of
``DATA_CENTERS``), get, delete (204, then 404). A pod created with ``mounts.network`` must be
on Secure Cloud and placed in the volume's data center (a ``dataCenterIds`` that excludes it
is the capacity 400, as on Runpod); the pod then reports that data center.

Disks (opt-in, ``FakeRunpod.use_disks``): every emulated pod shares one host folder as its
``/workspace`` (the world's ``THINNKA_REMOTE_ROOT``). With disks on, that folder is a
symlink that each pod, when created, points at its own disk: a fresh ``pod-<id>`` folder, or
its network volume's ``volume-<id>`` folder. Terminating a pod (by the API, or by Runpod when
it is lost) deletes its disk, as Runpod deletes a pod's volume disk; a volume's folder stays
and the next pod with that volume sees everything on it. A stopped (EXITED) pod keeps its
disk until it is terminated.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.world._runpod_model import Account, Pod, rand_id

if TYPE_CHECKING:
    from tests.world._runpod_state import World

__all__ = [
    "Volume",
    "disks_on_create",
    "disks_on_terminate",
    "handle_volumes",
    "mount_error",
    "registry",
    "use_disks",
]

_INVALID = "Request validation failed."
_TYPES = ("STANDARD", "HIGH_PERFORMANCE")
_CREATE_KEYS = {"name", "size", "dataCenter", "type"}


@dataclass
class Volume:
    id: str
    account_id: str
    name: str
    size: int
    data_center: str
    type: str = "STANDARD"

    def render(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "size": self.size,
                "dataCenter": self.data_center, "type": self.type}  # fmt: skip


@dataclass
class Registry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    volumes: dict[str, Volume] = field(default_factory=dict)
    root: Path | None = None  # the shared /workspace (a symlink while disks are on)
    store: Path | None = None  # where each pod's disk and each volume's folder live
    disk_of: dict[str, Path] = field(default_factory=dict)  # pod id -> its disk


def registry(world: World) -> Registry:
    found = world.__dict__.get("_volumes")
    if found is None:
        found = world.__dict__.setdefault("_volumes", Registry())
    return found  # type: ignore[no-any-return]


def reset_volumes(world: World) -> None:
    reg = registry(world)
    with reg.lock:
        reg.volumes.clear()
        reg.root = reg.store = None
        reg.disk_of.clear()


def _problem(status: int, detail: str, errors: list[str] | None = None) -> tuple[int, Any]:
    body: dict[str, Any] = {"title": "Error", "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return status, body


def handle_volumes(
    world: World, account: Account, method: str, rest: list[str], body: Any
) -> tuple[int, Any]:
    """(status, body) of a /v2/network-volumes request; the caller renders problems."""
    reg = registry(world)
    with reg.lock:
        mine = {k: v for k, v in reg.volumes.items() if v.account_id == account.id}
        if not rest and method == "GET":
            return 200, {"networkVolumes": [v.render() for v in mine.values()]}
        if not rest and method == "POST":
            return _create(reg, account, body)
        if len(rest) == 1 and method in ("GET", "DELETE"):
            volume = mine.get(rest[0])
            if volume is None:
                return _problem(404, "resource not found")
            if method == "GET":
                return 200, volume.render()
            del reg.volumes[volume.id]
            return 204, None
    return _problem(404, "resource not found")


def _create(reg: Registry, account: Account, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict):
        return _problem(422, _INVALID, ["$: value must be an object"])
    errors = [f"$: additional properties '{k}' not allowed" for k in body if k not in _CREATE_KEYS]
    for key in ("name", "size", "dataCenter"):
        if key not in body:
            errors.append(f"$: missing property '{key}'")
    size = body.get("size")
    if "size" in body and (not isinstance(size, int) or not 10 <= size <= 4096):
        errors.append("$.size: must be an integer between 10 and 4096")
    if "type" in body and body["type"] not in _TYPES:
        errors.append("$.type: value must be one of 'STANDARD', 'HIGH_PERFORMANCE'")
    if errors:
        return _problem(422, _INVALID, errors)
    # The v2 renderer imports the account state, which imports this module: read it late.
    from tests.world._runpod_v2render import DATA_CENTERS

    centers = [dc for dc, _ in DATA_CENTERS]
    if body["dataCenter"] not in centers:
        return _problem(400, f"network volumes are available in: {', '.join(centers)}")
    volume = Volume(rand_id(10).lower(), account.id, str(body["name"]), int(size),
                    str(body["dataCenter"]), str(body.get("type") or "STANDARD"))  # fmt: skip
    reg.volumes[volume.id] = volume
    return 201, volume.render()


def mount_error(world: World, account: Account, body: dict[str, Any], cloud: str) -> str | None:
    """Why a pod create with ``mounts.network`` cannot be placed (None: it can); "capacity"
    when only the data centers disagree (Runpod's no-capacity 400)."""
    network = (body.get("mounts") or {}).get("network")
    if not network:
        return None
    reg = registry(world)
    with reg.lock:
        volume = reg.volumes.get(str(network[0].get("volumeId")))
    if volume is None or volume.account_id != account.id:
        return "network volume not found"
    if cloud != "SECURE":
        return "network volumes can only be attached to Secure Cloud pods"
    wanted = body.get("dataCenterIds") or []
    if wanted and volume.data_center not in wanted:
        return "capacity"
    return None


def volume_data_center(world: World, volume_id: str | None) -> str | None:
    reg = registry(world)
    with reg.lock:
        volume = reg.volumes.get(str(volume_id)) if volume_id else None
    return volume.data_center if volume else None


def use_disks(world: World, root: Path, store: Path) -> None:
    """Give each pod its own disk from now on (see the module docstring)."""
    reg = registry(world)
    store.mkdir(parents=True, exist_ok=True)
    if root.is_dir() and not root.is_symlink():
        shutil.rmtree(root)
    with reg.lock:
        reg.root, reg.store = root, store


def disks_on_create(world: World, pod: Pod) -> None:
    reg = registry(world)
    with reg.lock:
        if reg.root is None or reg.store is None:
            return
        volume = pod.inputs.get("networkVolumeId")
        disk = reg.store / (f"volume-{volume}" if volume else f"pod-{pod.id}")
        disk.mkdir(parents=True, exist_ok=True)
        if not volume:
            reg.disk_of[pod.id] = disk
        if reg.root.is_symlink() or reg.root.exists():
            reg.root.unlink()
        reg.root.symlink_to(disk, target_is_directory=True)


def disks_on_terminate(world: World, pod_id: str) -> None:
    """The pod's own disk goes with it; a network volume's folder stays."""
    reg = registry(world)
    with reg.lock:
        disk = reg.disk_of.pop(pod_id, None)
    if disk is not None:
        shutil.rmtree(disk, ignore_errors=True)
