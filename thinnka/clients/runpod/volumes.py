"""Runpod network volumes over REST v2 (``/v2/network-volumes``), and where they can live.

A network volume lives in one data center, outlives every pod, and is attached only when a
pod is created (``mounts.network`` with ``dataCenterIds`` naming the volume's data center;
Secure Cloud only). Its name is free text, not unique: it is found by listing and
filtering. thinnka creates one by name when it is absent and never deletes one. Only the
REST client speaks this: ``volume_api`` says whether a Runpod client can.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

__all__ = ["NetworkVolume", "VolumeApi", "VolumeCalls", "find_volume", "volume_api"]

# Catalog availability levels that mean "a pod of this type can be placed there now".
_IN_STOCK = frozenset({"HIGH", "MEDIUM", "LOW"})


@dataclass(frozen=True)
class NetworkVolume:
    id: str
    name: str
    size_gb: int
    data_center: str

    @classmethod
    def from_v2(cls, data: dict[str, Any]) -> NetworkVolume:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            size_gb=int(data.get("size") or 0),
            data_center=str(data.get("dataCenter") or ""),
        )


@runtime_checkable
class VolumeApi(Protocol):
    """What thinnka does with network volumes (REST v2 only)."""

    def list_volumes(self) -> list[NetworkVolume]: ...

    def create_volume(self, name: str, size_gb: int, data_center: str) -> NetworkVolume: ...

    def gpu_data_centers(self, gpu_type_id: str, gpu_count: int) -> list[str]:
        """Secure Cloud data centers with stock of ``gpu_count`` GPUs of this type."""
        ...


def volume_api(runpod: object) -> VolumeApi | None:
    """``runpod`` as a ``VolumeApi`` when its transport speaks volumes (REST v2)."""
    return runpod if isinstance(runpod, VolumeApi) else None


def find_volume(api: VolumeApi, name: str) -> NetworkVolume | None:
    """The account's first volume called ``name`` (names are not unique on Runpod)."""
    return next((v for v in api.list_volumes() if v.name == name), None)


class VolumeCalls:
    """The volume calls, given the REST client's retried GET and its one-shot POST."""

    def __init__(
        self,
        get: Callable[[str, Any], Any],
        post: Callable[[str, dict[str, Any]], Any],
    ) -> None:
        self._get, self._post = get, post

    def list_volumes(self) -> list[NetworkVolume]:
        data = self._get("/network-volumes", None) or {}
        return [NetworkVolume.from_v2(v) for v in data.get("networkVolumes") or []]

    def create_volume(self, name: str, size_gb: int, data_center: str) -> NetworkVolume:
        # Runpod's bounds: 10 to 4096 GB (larger volumes go through its support).
        body = {"name": name, "size": min(max(size_gb, 10), 4096), "dataCenter": data_center}
        return NetworkVolume.from_v2(self._post("/network-volumes", body))

    def gpu_data_centers(self, gpu_type_id: str, gpu_count: int) -> list[str]:
        params = {"include": "AVAILABILITY", "product": "POD", "count": gpu_count,
                  "cloud": "SECURE"}  # fmt: skip
        item = self._get(f"/catalog/gpus/{quote(gpu_type_id, safe='')}", params) or {}
        return [
            str(dc["id"])
            for dc in item.get("dataCenters") or []
            if dc.get("id") and dc.get("availability") in _IN_STOCK
        ]
