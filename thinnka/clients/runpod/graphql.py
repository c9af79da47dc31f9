"""``RunpodApi`` over Runpod's GraphQL endpoint, with httpx.

The key travels only in ``Authorization: Bearer`` (never in the URL, so it
cannot leak through an error message). Errors are classified at this
boundary: auth errors are never retried; 429, 5xx and dropped connections are
retried with jittered exponential backoff (a 429 no sooner than its
``Retry-After``), a bounded number of times; a create only after a 429, which Runpod
answers before it acts. GraphQL ``errors[]`` are mapped by message substring, as
Runpod's own clients do.
Every httpx exception is translated (``classify_transport_error``), and an
answer of the wrong shape (not JSON, not a GraphQL object, a pod without an
id) is a thinnka error too, never a ``KeyError`` from deep inside parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from thinnka import __version__
from thinnka.clients.runpod.problems import RateLimited
from thinnka.clients.runpod.transport import (
    TRANSPORT_ERRORS,
    classify_transport_error,
    header_seconds,
)
from thinnka.clients.runpod.types import GpuOffer, Pod, PodPort, PodSpec
from thinnka.errors import (
    AuthError,
    CapacityError,
    NotFoundError,
    RemoteError,
    TransientError,
)

__all__ = ["GraphQLRunpod", "classify_graphql_error", "classify_transport_error"]

T = TypeVar("T")

_CAPACITY = ("no longer any instances available", "no instances available", "not enough free gpus")
_POD_FIELDS = """
    id name desiredStatus costPerHr uptimeSeconds gpuCount env
    machine { gpuDisplayName gpuTypeId }
    runtime { uptimeInSeconds ports { ip isIpPublic privatePort publicPort type } }
"""


def classify_graphql_error(message: str) -> RemoteError:
    """Turn Runpod's ``errors[0].message`` into the matching thinnka error."""
    lowered = message.lower()
    text = f"Runpod: {message.strip()}"
    if any(marker in lowered for marker in _CAPACITY):
        return CapacityError(text)
    if "unauthorized" in lowered or "permission" in lowered:
        return AuthError(text)
    if "not found" in lowered:
        return NotFoundError(text)
    if "something went wrong" in lowered or "try again later" in lowered:
        return TransientError(text)
    return RemoteError(text)


@contextmanager
def _answer_shape(what: str) -> Iterator[None]:
    """A Runpod answer missing fields, or of the wrong types, is a ``RemoteError``."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RemoteError(
            f"Runpod API answered {what} in a shape thinnka cannot read ({type(exc).__name__})."
        ) from exc


class GraphQLRunpod:
    """Runpod through GraphQL. Thread-safe enough for one command's use."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        attempts: int = 5,
        max_delay: float = 60.0,
        backoff_max: float = 8.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {
            "User-Agent": f"thinnka/{__version__}",
            "Content-Type": "application/json",
        }
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        backoff = wait_random_exponential(multiplier=0.5, max=backoff_max)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            pause = float(backoff(state))
            if isinstance(error, RateLimited) and error.retry_after is not None:
                return max(pause, min(error.retry_after, max_delay))
            return pause

        def make(retryable: type[TransientError]) -> Any:
            return retry(
                retry=retry_if_exception_type(retryable),
                stop=stop_after_attempt(attempts) | stop_after_delay(max_delay),
                wait=wait,
                reraise=True,
            )

        self._retrying = make(TransientError)
        # A 429 comes before Runpod acts, so a create may be sent again after one; after a
        # 5xx or a dropped answer the pod may exist: the provision step looks for it first.
        self._retrying_create = make(RateLimited)

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------ transport
    def _post_once(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post("/graphql", json={"query": query, "variables": variables})
            text = response.text  # decoding errors surface here, inside the translation
        except TRANSPORT_ERRORS as exc:
            raise classify_transport_error(exc) from None
        status = response.status_code
        if status in (401, 403):
            raise AuthError(f"Runpod refused the API key (HTTP {status}).")
        if status == 429:
            retry_after = header_seconds(response.headers.get("Retry-After"))
            raise RateLimited("Runpod API answered HTTP 429.", retry_after=retry_after)
        if status >= 500:
            raise TransientError(f"Runpod API answered HTTP {status}.")
        if status != 200:
            raise RemoteError(f"Runpod API answered HTTP {status}: {_short(text)}")
        try:
            body = response.json()
        except ValueError:  # not JSON (a proxy's HTML error page, a cut-off body)
            raise TransientError("Runpod API answered with something that is not JSON.") from None
        if not isinstance(body, dict):
            raise RemoteError("Runpod API answered JSON that is not a GraphQL response.")
        errors = body.get("errors") or []
        if errors:
            first = errors[0] if isinstance(errors, list) else errors
            message = first.get("message") if isinstance(first, dict) else first
            raise classify_graphql_error(str(message or "unknown GraphQL error"))
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise RemoteError("Runpod API answered a GraphQL `data` that is not an object.")
        return data

    def _post(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        call: Callable[[], dict[str, Any]] = lambda: self._post_once(query, variables or {})  # noqa: E731
        answer: dict[str, Any] = self._retrying(call)()
        return answer

    # ------------------------------------------------------------ RunpodApi
    def gpu_offers(self, gpu_count: int, cloud_type: str = "ALL") -> list[GpuOffer]:
        secure = {"SECURE": True, "COMMUNITY": False}.get(cloud_type)
        price_input: dict[str, Any] = {"gpuCount": gpu_count}
        if secure is not None:
            price_input["secureCloud"] = secure
        data = self._post(
            """query GpuOffers($price: GpuLowestPriceInput) {
                gpuTypes { id displayName memoryInGb maxGpuCount
                  lowestPrice(input: $price) { uninterruptablePrice stockStatus } } }""",
            {"price": price_input},
        )
        with _answer_shape("the GPU catalog"):
            return self._offers(data, gpu_count, cloud_type)

    def _offers(self, data: dict[str, Any], gpu_count: int, cloud_type: str) -> list[GpuOffer]:
        offers = []
        for item in data.get("gpuTypes") or []:
            if item.get("id") in (None, "unknown"):
                continue
            price = item.get("lowestPrice") or {}
            offers.append(
                GpuOffer(
                    id=item["id"],
                    display_name=item.get("displayName") or item["id"],
                    memory_gb=float(item.get("memoryInGb") or 0),
                    gpu_count=gpu_count,
                    price_per_gpu_hour=price.get("uninterruptablePrice"),
                    stock=price.get("stockStatus"),
                    max_gpu_count=item.get("maxGpuCount"),
                    clouds=(cloud_type,),
                )
            )
        return offers

    def create_pod(self, spec: PodSpec) -> Pod:
        # Retried only after a 429: a create that timed out or failed may have succeeded.
        # The provision step looks for the run's pod before it creates again.
        variables = {
            "input": {
                "cloudType": spec.cloud_type,
                "gpuTypeId": spec.gpu_type_id,
                "gpuCount": spec.gpu_count,
                "name": spec.name,
                "imageName": spec.image,
                "volumeInGb": spec.volume_gb,
                "containerDiskInGb": spec.container_disk_gb,
                "minVcpuCount": spec.min_vcpu,
                "minMemoryInGb": spec.min_memory_gb,
                "dockerArgs": spec.start_command,
                "ports": spec.ports,
                "volumeMountPath": spec.volume_mount_path,
                "supportPublicIp": spec.support_public_ip,
                "startSsh": True,
                "env": [{"key": k, "value": v} for k, v in spec.env.items()],
            }
        }
        query = f"""mutation Create($input: PodFindAndDeployOnDemandInput!) {{
                podFindAndDeployOnDemand(input: $input) {{ {_POD_FIELDS} }} }}"""
        call: Callable[[], dict[str, Any]] = lambda: self._post_once(query, variables)  # noqa: E731
        data = self._retrying_create(call)()
        pod = data.get("podFindAndDeployOnDemand")
        if not isinstance(pod, dict) or not pod.get("id"):
            raise RemoteError("Runpod did not return a pod id.")
        with _answer_shape("the created pod"):
            return _pod_from_graphql(pod)

    def get_pod(self, pod_id: str) -> Pod | None:
        data = self._post(
            f"query Pod($input: PodFilter!) {{ pod(input: $input) {{ {_POD_FIELDS} }} }}",
            {"input": {"podId": pod_id}},
        )
        pod = data.get("pod")
        with _answer_shape("a pod"):
            return _pod_from_graphql(pod) if pod else None

    def list_pods(self) -> list[Pod]:
        data = self._post(f"query Pods {{ myself {{ pods {{ {_POD_FIELDS} }} }} }}")
        with _answer_shape("the pod list"):
            return [
                _pod_from_graphql(item) for item in ((data.get("myself") or {}).get("pods") or [])
            ]

    def terminate_pod(self, pod_id: str) -> None:
        self._post(
            "mutation Terminate($input: PodTerminateInput!) { podTerminate(input: $input) }",
            {"input": {"podId": pod_id}},
        )

    def billed_cost(self, pod_id: str) -> float | None:
        return None  # GraphQL has no per-pod billing records; callers use the estimate


def _pod_from_graphql(data: dict[str, Any]) -> Pod:
    runtime = data.get("runtime") or None
    ports: tuple[PodPort, ...] | None = None
    if runtime and runtime.get("ports") is not None:
        ports = tuple(
            PodPort(
                ip=p.get("ip") or "",
                is_ip_public=bool(p.get("isIpPublic")),
                private_port=int(p.get("privatePort") or 0),
                public_port=int(p.get("publicPort") or 0),
                type=p.get("type") or "",
            )
            for p in runtime["ports"]
        )
    env: dict[str, str] = {}
    for item in data.get("env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    return Pod(
        id=data["id"],
        name=data.get("name") or "",
        desired_status=data.get("desiredStatus") or "",
        cost_per_hr=data.get("costPerHr"),
        env=env,
        ports=ports,
        uptime_seconds=(runtime or {}).get("uptimeInSeconds", data.get("uptimeSeconds")),
        gpu_count=data.get("gpuCount"),
        gpu_display_name=(data.get("machine") or {}).get("gpuDisplayName"),
        gpu_type_id=(data.get("machine") or {}).get("gpuTypeId"),
    )


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
