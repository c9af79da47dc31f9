"""The Runpod interface thinnka needs, as a Protocol, and the records it trades.

Two transports implement ``RunpodApi``: REST v2 (``rest.py``, the default) and
GraphQL (``graphql.py``, until Runpod retires it in early 2027). Nothing above
the clients knows which transport is in use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from thinnka.planning.gpus import GpuOffer

__all__ = ["GpuOffer", "Pod", "PodPort", "PodSpec", "RunpodApi"]


@dataclass(frozen=True)
class PodPort:
    ip: str
    is_ip_public: bool
    private_port: int
    public_port: int
    type: str


@dataclass(frozen=True)
class Pod:
    id: str
    name: str
    desired_status: str
    cost_per_hr: float | None
    env: Mapping[str, str] = field(default_factory=dict)
    # None while the container is not up (runtime null); the ports once it is.
    ports: tuple[PodPort, ...] | None = None
    uptime_seconds: int | None = None
    gpu_count: int | None = None
    gpu_display_name: str | None = None
    gpu_type_id: str | None = None  # what runs.gpu_type holds (never the display name)

    def public_ssh(self) -> PodPort | None:
        """The public 22/tcp mapping; a private entry listed first is never it."""
        for port in self.ports or ():
            if port.private_port == 22 and port.is_ip_public and port.ip and port.public_port:
                return port
        return None

    @property
    def is_running(self) -> bool:
        return self.desired_status == "RUNNING"


@dataclass(frozen=True)
class PodSpec:
    """What to create. ``env`` never holds the HF token (it goes over SFTP)."""

    name: str
    image: str
    gpu_type_id: str
    gpu_count: int
    cloud_type: str
    volume_gb: int
    container_disk_gb: int
    min_vcpu: int
    min_memory_gb: int
    env: Mapping[str, str]
    ports: str = "22/tcp"
    volume_mount_path: str = "/workspace"
    support_public_ip: bool = True
    # Replaces the image's CMD (its ENTRYPOINT stays); empty: the image's own.
    start_command: str = ""
    # A network volume mounted at volume_mount_path instead of a volume disk (REST v2), and
    # the data centers the pod may be placed in (the volume's).
    network_volume_id: str | None = None
    data_center_ids: tuple[str, ...] = ()


class RunpodApi(Protocol):
    """The operations thinnka performs on a Runpod account."""

    def gpu_offers(self, gpu_count: int, cloud_type: str = "ALL") -> list[GpuOffer]:
        """The catalog with price and stock for ``gpu_count`` GPUs (works without a key)."""
        ...

    def create_pod(self, spec: PodSpec) -> Pod:
        """Create an on-demand pod; ``CapacityError`` when none is available."""
        ...

    def get_pod(self, pod_id: str) -> Pod | None:
        """The pod, or None once it does not exist."""
        ...

    def list_pods(self) -> list[Pod]:
        """Every pod on the account (no server-side filter can be trusted)."""
        ...

    def terminate_pod(self, pod_id: str) -> None:
        """Terminate; ``NotFoundError`` when the pod does not exist."""
        ...

    def billed_cost(self, pod_id: str) -> float | None:
        """What Runpod billed for the pod so far (USD), or None where the transport has no
        billing records (GraphQL) or none exist yet."""
        ...
