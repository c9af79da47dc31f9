"""``RunpodApi`` over Runpod's REST v2 (``{base}/v2``), with httpx and tenacity.

The API facts this follows are in docs/runpod.md. What differs from GraphQL, and how it is
served here:

- Create takes one ``gpu.id`` and one ``cloud`` and never falls back; the provision step walks
  the candidates (and, for ``--cloud-type ALL``, SECURE then COMMUNITY per candidate).
- ``ports: ["22/tcp"]`` and ``startSsh: true`` are always sent (v2 defaults neither), and the
  public SSH endpoint is ``ssh.direct`` only, never the proxy nor a ``runtime.ports`` entry.
- Errors are problem+json, mapped in ``problems.py``. Auth errors are never retried; 429
  (after ``Retry-After``), 5xx and dropped connections are retried a bounded number of times
  with jittered backoff. A create is retried only after a 429, which Runpod sends before it
  acts: after a 5xx or a dropped answer the pod may exist, and the provision step looks for
  it before creating again.
- Every answer's ``RateLimit`` header paces the next request (``ratelimit.py``).
- The v2 catalog needs a key. Without one (``plan``, ``gpus``), the keyless GraphQL catalog
  is read while Runpod still serves it, and a clear error says to set the key once it is gone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_random_exponential

from thinnka import __version__
from thinnka.clients.runpod.problems import Operation, RateLimited, error_for
from thinnka.clients.runpod.ratelimit import RatePacer
from thinnka.clients.runpod.transport import (
    TRANSPORT_ERRORS,
    classify_transport_error,
    header_seconds,
)
from thinnka.clients.runpod.types import GpuOffer, Pod, PodPort, PodSpec
from thinnka.clients.runpod.volumes import NetworkVolume, VolumeCalls
from thinnka.errors import ConfigError, NotFoundError, RemoteError, TransientError

__all__ = ["RestRunpod"]

T = TypeVar("T")

_STOCK = {"HIGH": "High", "MEDIUM": "Medium", "LOW": "Low"}  # GpuOffer speaks GraphQL's case
_GONE = ("TERMINATED",)


class RestRunpod:
    """Runpod through REST v2. One instance per command; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        attempts: int = 5,
        max_delay: float = 120.0,
        backoff_max: float = 8.0,
        max_rate_wait: float = 90.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._has_key = bool(api_key)
        headers = {"User-Agent": f"thinnka/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=f"{self._base_url}/v2", headers=headers, timeout=timeout, transport=transport
        )
        self.pacer = RatePacer(max_wait_s=max_rate_wait)
        backoff = wait_random_exponential(multiplier=0.5, max=backoff_max)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, RateLimited) and error.retry_after is not None:
                return 0.0  # the pacer already holds the next request until Retry-After
            return float(backoff(state))

        def make(retryable: Callable[[BaseException], bool]) -> Any:
            return retry(
                retry=retry_if_exception(retryable),
                stop=stop_after_attempt(attempts) | stop_after_delay(max_delay),
                wait=wait,
                reraise=True,
            )

        self._retrying = make(lambda exc: isinstance(exc, TransientError))
        self._retrying_create = make(lambda exc: isinstance(exc, RateLimited))

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------ transport
    def _send(
        self, method: str, path: str, op: Operation, *, params: Any = None, body: Any = None
    ) -> httpx.Response:
        too_long = self.pacer.wait()
        if too_long:
            raise TransientError(
                f"Runpod's rate limit allows the next request in {math.ceil(too_long)} s."
            )
        try:
            response = self._client.request(method, path, params=params, json=body)
        except TRANSPORT_ERRORS as exc:
            raise classify_transport_error(exc) from None
        self.pacer.observe(response.headers)
        if response.is_success:
            return response
        retry_after = header_seconds(response.headers.get("Retry-After"))
        if response.status_code == 429:
            self.pacer.defer(retry_after if retry_after is not None else 1.0)
        raise error_for(response.status_code, response.text, op, retry_after=retry_after)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TransientError("Runpod API answered with something that is not JSON.") from None

    def _get(self, path: str, op: Operation, params: Any = None) -> Any:
        call: Callable[[], Any] = lambda: self._json(self._send("GET", path, op, params=params))  # noqa: E731
        return self._retrying(call)()

    # ------------------------------------------------------------ RunpodApi
    def gpu_offers(self, gpu_count: int, cloud_type: str = "ALL") -> list[GpuOffer]:
        clouds = ("SECURE", "COMMUNITY") if cloud_type == "ALL" else (cloud_type,)
        if not self._has_key:
            return self._keyless_offers(gpu_count, cloud_type, clouds)

        def listed(cloud: str) -> list[dict[str, Any]]:
            params = {"include": "AVAILABILITY", "product": "POD", "count": gpu_count}
            found = self._get("/catalog/gpus", "catalog", {**params, "cloud": cloud})
            return found.get("gpus") or []

        # Both clouds at once: the catalog is read before every pod's create, and over a
        # real network a second round trip after the first is a few tenths of a second.
        with ThreadPoolExecutor(max_workers=len(clouds), thread_name_prefix="catalog") as pool:
            per_cloud = dict(zip(clouds, pool.map(listed, clouds), strict=True))
        merged: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for cloud, items in per_cloud.items():
            for item in items:
                if item.get("id") and item.get("id") != "unknown":
                    merged.setdefault(item["id"], []).append((cloud, item))
        return [_offer(entries, gpu_count) for entries in merged.values()]

    def _keyless_offers(
        self, gpu_count: int, cloud_type: str, clouds: tuple[str, ...]
    ) -> list[GpuOffer]:
        from dataclasses import replace

        from thinnka.clients.runpod.graphql import GraphQLRunpod

        public = GraphQLRunpod(self._base_url, None, attempts=2)
        try:
            offers = public.gpu_offers(gpu_count, cloud_type)
        except RemoteError as exc:
            raise ConfigError(
                "Runpod's REST v2 catalog needs an API key and the keyless GraphQL catalog "
                f"could not be read ({exc.message}); set RUNPOD_API_KEY."
            ) from None
        finally:
            public.close()
        return [replace(o, clouds=clouds if o.in_stock else ()) for o in offers]

    def create_pod(self, spec: PodSpec) -> Pod:
        body = create_body(spec)
        call: Callable[[], Pod] = lambda: _pod_from_v2(  # noqa: E731
            self._json(self._send("POST", "/pods", "create", body=body))
        )
        pod: Pod = self._retrying_create(call)()
        return pod

    def get_pod(self, pod_id: str) -> Pod | None:
        try:
            data = self._get(f"/pods/{quote(pod_id, safe='')}", "read")
        except NotFoundError:
            return None
        pod = _pod_from_v2(data)
        return None if pod.desired_status in _GONE else pod

    def list_pods(self) -> list[Pod]:
        pods = (self._get("/pods", "read") or {}).get("pods") or []
        return [p for p in map(_pod_from_v2, pods) if p.desired_status not in _GONE]

    def terminate_pod(self, pod_id: str) -> None:
        # DELETE is safe to repeat: one that landed before its answer was lost makes the
        # retry a 404, which the caller confirms with a read (terminate_and_confirm).
        path = f"/pods/{quote(pod_id, safe='')}"
        call: Callable[[], object] = lambda: self._send("DELETE", path, "delete")  # noqa: E731
        self._retrying(call)()

    # ------------------------------------------------------------ network volumes
    def _volumes(self) -> VolumeCalls:
        def post(path: str, body: dict[str, Any]) -> Any:
            # Like a pod create: retried only after a 429 (a lost answer may have created it;
            # the next run finds it by its name).
            call: Callable[[], Any] = lambda: self._json(  # noqa: E731
                self._send("POST", path, "create", body=body)
            )
            return self._retrying_create(call)()

        return VolumeCalls(lambda path, params: self._get(path, "read", params), post)

    def list_volumes(self) -> list[NetworkVolume]:
        return self._volumes().list_volumes()

    def create_volume(self, name: str, size_gb: int, data_center: str) -> NetworkVolume:
        return self._volumes().create_volume(name, size_gb, data_center)

    def gpu_data_centers(self, gpu_type_id: str, gpu_count: int) -> list[str]:
        return self._volumes().gpu_data_centers(gpu_type_id, gpu_count)

    def billed_cost(self, pod_id: str) -> float | None:
        # One attempt: a best-effort read for `show`, whose fallback is the estimate. Day
        # buckets over the default 30 days (older pods show the estimate).
        params = {"podId": pod_id, "bucketSize": "day"}
        data = self._json(self._send("GET", "/billing/pods", "billing", params=params))
        records = (data or {}).get("records") or []
        if not records:
            return None
        return round(sum(float(r.get("totalAmount") or 0.0) for r in records), 6)


def create_body(spec: PodSpec) -> dict[str, Any]:
    """The closed ``POST /v2/pods`` body for ``spec`` (unknown keys are a 422).

    ``min_vcpu``/``min_memory_gb`` are pod totals in thinnka (as the original tool's were); v2's
    fields are per-GPU placement filters, so they are divided by the GPU count, rounded up.
    ``support_public_ip`` has no v2 field: SECURE hosts have public IPs, and a COMMUNITY pod
    that never gets ``ssh.direct`` ends the SSH wait at its deadline (the pod is terminated).
    """
    if spec.cloud_type not in ("SECURE", "COMMUNITY", "ALL"):
        raise ConfigError(f"Unknown cloud type {spec.cloud_type!r}.")
    count = max(1, spec.gpu_count)
    gpu: dict[str, Any] = {"id": spec.gpu_type_id, "count": count}
    if spec.min_vcpu > 0:
        gpu["minVcpuCountPerGpu"] = math.ceil(spec.min_vcpu / count)
    if spec.min_memory_gb > 0:
        gpu["minRamPerGpu"] = math.ceil(spec.min_memory_gb / count)
    ports = [p.strip() for p in spec.ports.split(",") if p.strip()]
    if "22/tcp" not in ports:
        ports.append("22/tcp")  # without it there is never an ssh.direct
    body: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image,
        "gpu": gpu,
        "disk": spec.container_disk_gb,
        "ports": ports,
        "env": dict(spec.env),
        "startSsh": True,
    }
    if spec.start_command:  # v2's name for the container start command (GraphQL dockerArgs)
        body["args"] = spec.start_command
    if spec.cloud_type != "ALL":  # an omitted cloud is SECURE; ALL comes from old plans
        body["cloud"] = spec.cloud_type
    if spec.network_volume_id:
        # A network volume replaces the pod's volume disk; the pod must be placed in the
        # volume's data center (dataCenterIds is enforced).
        body["mounts"] = {
            "network": [{"volumeId": spec.network_volume_id, "path": spec.volume_mount_path}]
        }
        body["dataCenterIds"] = list(spec.data_center_ids)
    elif spec.volume_gb > 0:
        body["mounts"] = {
            "persistent": {"size": max(10, spec.volume_gb), "path": spec.volume_mount_path}
        }
    return body


def _offer(entries: list[tuple[str, dict[str, Any]]], gpu_count: int) -> GpuOffer:
    """One GPU type from its per-cloud catalog entries (in the order the clouds are tried)."""
    first = entries[0][1]
    stocked = [
        (cloud, item)
        for cloud, item in entries
        if item.get("availability") in _STOCK and _price(item, cloud) is not None
    ]
    cloud, item = stocked[0] if stocked else entries[0]
    max_count = (item.get("maxCount") or {}).get(cloud.lower())
    return GpuOffer(
        id=first["id"],
        display_name=first.get("name") or first["id"],
        memory_gb=float(first.get("memory") or 0),
        gpu_count=gpu_count,
        price_per_gpu_hour=_price(item, cloud),
        stock=_STOCK.get(str(item.get("availability"))) if stocked else None,
        max_gpu_count=int(max_count) if max_count is not None else None,
        clouds=tuple(c for c, _ in stocked),
    )


def _price(item: dict[str, Any], cloud: str) -> float | None:
    value = (item.get("price") or {}).get(cloud.lower())
    return float(value) if value is not None else None


def _pod_from_v2(data: dict[str, Any]) -> Pod:
    """A v2 pod as thinnka's record: the public SSH port is ``ssh.direct``, nothing else."""
    status = str(data.get("status") or "")
    runtime = data.get("runtime") or None  # {} before RUNNING means the same as null
    ports: tuple[PodPort, ...] | None = None
    if runtime and runtime.get("ports") is not None:
        # No public flag in v2: these are never taken for SSH (private 22 mappings exist).
        ports = tuple(
            PodPort(
                ip=str(p.get("ip") or ""),
                is_ip_public=False,
                private_port=int(p.get("private") or 0),
                public_port=int(p.get("public") or 0),
                type=str(p.get("type") or ""),
            )
            for p in runtime["ports"]
        )
    direct = (data.get("ssh") or {}).get("direct")
    if status == "RUNNING" and direct and direct.get("host") and direct.get("port"):
        public = PodPort(str(direct["host"]), True, 22, int(direct["port"]), "tcp")
        ports = (public, *(ports or ()))
    gpu = data.get("gpu") or {}
    env = data.get("env") or {}
    return Pod(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        desired_status=status,
        cost_per_hr=data.get("cost"),
        env={str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
        ports=ports,
        uptime_seconds=(runtime or {}).get("uptime"),
        gpu_count=gpu.get("count"),
        gpu_display_name=gpu.get("id"),
        gpu_type_id=gpu.get("id"),
    )
