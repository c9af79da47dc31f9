"""Records, exact error texts and the GPU catalog of the fake Runpod.

Why a module of plain data: the state machine, the GraphQL layer, the REST layer and the tests
all speak about the same GPU types, error texts and ledger entries; keeping them here (with no
behaviour) lets each of those import them without import cycles. Texts and ids are the real
API's (docs/runpod.md, "GraphQL" and "GPU ids"); prices are illustrative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CATALOG",
    "GPU_NOT_FOUND",
    "NOT_ENOUGH_GPUS",
    "NOT_FOUND_TERMINATE",
    "NO_CAPACITY",
    "NO_CAPACITY_SPOT",
    "POD_NOT_FOUND",
    "STOCK_LEVELS",
    "UNAUTHORIZED",
    "AccountKeys",
    "Fault",
    "GpuSpec",
    "PodLedgerEntry",
    "PodView",
    "PortMapping",
    "RunpodError",
    "gpu_by_id",
    "price_for",
    "stock_status",
]

# Exact texts (clients classify on substrings of these).
NO_CAPACITY = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)
NO_CAPACITY_SPOT = (
    "There are no instances available with the request specifications. Please try again later."
)
NOT_ENOUGH_GPUS = "There are not enough free GPUs on the host machine to start this pod."
NOT_FOUND_TERMINATE = "pod not found to terminate"
UNAUTHORIZED = "Unauthorized"
GPU_NOT_FOUND = "GPU type not found"  # the real text is unknown; a plausible stand-in
POD_NOT_FOUND = "pod not found"  # stop/resume of an unknown pod; real text unverified

# A named stock level sets this many free GPUs of a type.
STOCK_LEVELS: dict[str, int] = {"High": 64, "Medium": 6, "Low": 2, "None": 0}


class RunpodError(Exception):
    """A resolver-level refusal: GraphQL answers 200 + errors[], REST v2 answers problem+json."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # the REST v2 status for the same refusal


@dataclass(frozen=True)
class GpuSpec:
    """One GPU type as `gpuTypes` reports it; `None` prices mean "not offered in that cloud"."""

    id: str
    display_name: str
    memory_in_gb: int
    secure_price: float | None
    community_price: float | None
    secure_spot_price: float | None
    community_spot_price: float | None
    max_gpu_count: int
    default_stock: int
    cuda_cores: int
    vcpu_per_gpu: int
    memory_per_gpu: int
    manufacturer: str = "Nvidia"


CATALOG: tuple[GpuSpec, ...] = (
    GpuSpec("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 0.69, 0.34, 0.35, 0.20, 8, 64, 16384, 6, 41),
    GpuSpec("NVIDIA RTX A6000", "RTX A6000", 48, 0.49, 0.33, 0.25, 0.17, 8, 32, 10752, 8, 50),
    GpuSpec("NVIDIA L40S", "L40S", 48, 0.86, 0.79, 0.53, 0.40, 8, 24, 18176, 12, 62),
    GpuSpec("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, 1.64, 1.19, 0.82, 0.60, 8, 16, 6912, 8, 117),
    GpuSpec("NVIDIA A100-SXM4-80GB", "A100 SXM", 80, 1.74, 1.39, 0.87, 0.70, 8, 16, 6912, 16, 125),
    GpuSpec("NVIDIA H100 PCIe", "H100 PCIe", 80, 2.39, 1.99, 1.20, 1.00, 8, 8, 14592, 16, 188),
    GpuSpec("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 2.69, 2.39, 1.35, 1.20, 8, 16, 16896, 20, 125),
    GpuSpec("NVIDIA H200", "H200 SXM", 141, 3.59, None, 1.80, None, 8, 8, 16896, 24, 188),
    # The real unfiltered list carries this placeholder; runpodctl and the docs generator drop it.
    GpuSpec("unknown", "unknown", 0, None, None, None, None, 0, 0, 0, 0, 0, "unknown"),
)


def gpu_by_id(gpu_type_id: str) -> GpuSpec | None:
    """Exact, whitespace-sensitive lookup (GPU ids are opaque strings; some hold double spaces)."""
    return next((g for g in CATALOG if g.id == gpu_type_id), None)


def price_for(gpu: GpuSpec, cloud: str, *, spot: bool = False) -> float | None:
    """Per-GPU price in a cloud; ALL means the cheaper of the clouds that offer the type."""
    secure = gpu.secure_spot_price if spot else gpu.secure_price
    community = gpu.community_spot_price if spot else gpu.community_price
    if cloud == "SECURE":
        return secure
    if cloud == "COMMUNITY":
        return community
    offered = [p for p in (secure, community) if p is not None]
    return min(offered) if offered else None


def stock_status(available: int, gpu_count: int, max_gpu_count: int) -> str | None:
    """High/Medium/Low by how many pods of `gpu_count` still fit; None when none fits."""
    if gpu_count < 1 or gpu_count > max_gpu_count:
        return None
    fits = available // gpu_count
    if fits >= 8:
        return "High"
    if fits >= 3:
        return "Medium"
    return "Low" if fits >= 1 else None


@dataclass(frozen=True)
class AccountKeys:
    """The credentials of one fake account (the read-only key sees the same pods)."""

    account_id: str
    api_key: str
    read_only_key: str


@dataclass(frozen=True)
class PortMapping:
    """One `runtime.ports` entry, transport-neutral."""

    ip: str
    is_ip_public: bool
    private_port: int
    public_port: int
    type: str


@dataclass(frozen=True)
class PodView:
    """A read-only snapshot of a live pod, for test assertions."""

    id: str
    account_id: str
    name: str
    desired_status: str
    gpu_type_id: str
    gpu_count: int
    image_name: str
    env: dict[str, str]
    ports: str
    cost_per_hr: float
    booted: bool
    foreign: bool
    ssh_port: int | None
    inputs: dict[str, Any]


@dataclass(frozen=True)
class PodLedgerEntry:
    """Billing record of one pod ever created; kept after termination so leak checks can read it.

    `cost` is billed per started second while RUNNING (Runpod bills by the second) plus volume
    storage while EXITED, so any pod that lived at all costs more than zero.
    """

    pod_id: str
    name: str
    account_id: str
    gpu_type_id: str
    gpu_count: int
    cost_per_hr: float
    created_at: float
    terminated_at: float | None
    seconds_alive: float
    running_seconds: float
    cost: float
    status: str
    foreign: bool
    terminated_by: str | None
    env: dict[str, str]

    @property
    def terminated(self) -> bool:
        return self.terminated_at is not None


@dataclass
class Fault:
    """One queued transport fault; `match` limits it to requests whose text contains it."""

    kind: str  # "status", "drop" or "delay" (the real answer, late)
    status: int = 500
    remaining: int = 1
    retry_after: float | None = None
    match: str | None = None
    # After routing: the request takes effect (a pod is created, deleted, ...) and then its
    # answer is replaced or lost, as when a proxy drops a reply that Runpod already acted on.
    after: bool = False
    skip: int = 0  # let this many matching requests through before the fault starts
    delay_s: float = 0.0  # "delay": how long the answer waits
