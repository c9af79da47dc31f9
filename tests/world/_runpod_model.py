"""The fake Runpod's mutable records: accounts, pods and their billing, plus id helpers.

Why apart from `World`: these are plain data that the GraphQL and REST renderers read, while
`World` (in `_runpod_state.py`) owns the rules that change them under its lock. Nothing here
locks; callers hold `World.lock`.
"""

from __future__ import annotations

import math
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from tests.world._runpod_records import GpuSpec, PodLedgerEntry

__all__ = [
    "Account",
    "Bill",
    "Pod",
    "js_date",
    "ledger_entry",
    "port_specs",
    "rand_id",
    "unique_id",
]

_STOPPED_VOLUME_USD_PER_GB_SECOND = 0.20 / (30 * 86400)  # Runpod: $0.20/GB-month while EXITED
_ALNUM = string.ascii_lowercase + string.digits


@dataclass
class Account:
    """One Runpod account: its keys, registered SSH keys and live pods."""

    id: str
    api_key: str
    read_only_key: str
    email: str
    pub_key: str = ""
    pods: dict[str, Pod] = field(default_factory=dict)


@dataclass
class Pod:
    """A pod as the fake stores it; rendered per transport by the schema and REST layers."""

    id: str
    account_id: str
    name: str
    image_name: str
    gpu: GpuSpec
    gpu_count: int
    cloud_type: str
    price_per_gpu: float
    env: list[tuple[str, str]]
    ports: str
    docker_args: str
    container_disk_in_gb: int
    volume_in_gb: int
    volume_mount_path: str
    vcpu_count: int
    memory_in_gb: int
    pod_type: str
    secure: bool
    inputs: dict[str, Any]
    created_at: float  # wall clock (epoch seconds)
    machine_id: str = field(default_factory=lambda: rand_id(12))
    host_suffix: str = field(default_factory=lambda: secrets.token_hex(4))
    private_ip: str = field(default_factory=lambda: f"10.{_octet()}.{_octet()}.{_octet()}")
    desired_status: str = "RUNNING"
    last_started_at: float = 0.0
    last_status_change: str = ""
    boot_at: float = math.inf  # World clock time at which `runtime` appears
    boot_from: float = 0.0  # World clock time the current boot began (v2 status progression)
    failed: bool = False  # v2 status ERROR (scripted with `World.fail_pod`)
    public_ports: dict[int, int] = field(default_factory=dict)
    locked: bool = False
    foreign: bool = False
    holds_stock: bool = False  # True while the pod occupies GPUs from `World.stock`

    @property
    def cost_per_hr(self) -> float:
        return round(self.price_per_gpu * self.gpu_count, 4)

    @property
    def pod_host_id(self) -> str:
        return f"{self.id}-{self.host_suffix}"

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)


@dataclass
class Bill:
    """Running and stopped time of one pod, kept after it is terminated."""

    pod: Pod
    created_clock: float
    running_since: float | None
    exited_since: float | None = None
    running_seconds: float = 0.0
    exited_seconds: float = 0.0
    terminated_clock: float | None = None
    terminated_at: float | None = None
    terminated_by: str | None = None


def rand_id(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _octet() -> int:
    return secrets.randbelow(254) + 1


def js_date(epoch: float) -> str:
    """The JavaScript `Date.toString()` form Runpod puts into `lastStatusChange`."""
    return time.strftime(
        "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", time.gmtime(epoch)
    )


def ledger_entry(bill: Bill, now: float) -> PodLedgerEntry:
    pod = bill.pod
    running = bill.running_seconds + (now - bill.running_since if bill.running_since else 0.0)
    exited = bill.exited_seconds + (now - bill.exited_since if bill.exited_since else 0.0)
    end = bill.terminated_clock if bill.terminated_clock is not None else now
    # Billed per started second (Runpod bills by the second), so any pod that lived costs > 0.
    cost = (
        math.ceil(running) * pod.cost_per_hr / 3600
        + exited * pod.volume_in_gb * _STOPPED_VOLUME_USD_PER_GB_SECOND
    )
    status = "TERMINATED" if bill.terminated_at is not None else pod.desired_status
    return PodLedgerEntry(
        pod.id,
        pod.name,
        pod.account_id,
        pod.gpu.id,
        pod.gpu_count,
        pod.cost_per_hr,
        pod.created_at,
        bill.terminated_at,
        end - bill.created_clock,
        running,
        cost,
        status,
        pod.foreign,
        bill.terminated_by,
        pod.env_dict(),
    )


def unique_id(taken: dict[str, Any]) -> str:
    while (pod_id := rand_id(14)) in taken:
        pass
    return pod_id


def port_specs(ports: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for item in filter(None, ports.split(",")):
        number, _, kind = item.partition("/")
        if number.isdigit():
            out.append((int(number), kind or "http"))
    return out
