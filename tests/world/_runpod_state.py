"""Thread-safe account state of the fake Runpod: GPU stock, pods, boots, faults and the ledger.

Why one module owns all of it: GraphQL (`_runpod_schema.py`), REST v2 and the test controls
(`runpod.py`) must act on the *same* pods, exactly as the real API's transports do, and tests
drive it from other threads while requests are in flight. Every mutation therefore goes through
`World` under one re-entrant lock, and time is read from one clock that tests can push forward
(`advance`) so boots finish and cost accrues without sleeping.

Boots are lazy: a pod stores the clock time at which its runtime appears and every read compares
against "now", so no timer threads exist and stopping the server leaves nothing behind.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tests.world._random_faults import RandomFaults
from tests.world._runpod_model import (
    Account,
    Bill,
    Pod,
    js_date,
    ledger_entry,
    port_specs,
    rand_id,
    unique_id,
)
from tests.world._runpod_podkeys import (
    kill_pod_processes,
    on_pod_created,
    on_pod_terminated,
    on_reset,
    start_container,
    stop_container,
)
from tests.world._runpod_records import (
    CATALOG,
    GPU_NOT_FOUND,
    NO_CAPACITY,
    NO_CAPACITY_SPOT,
    NOT_ENOUGH_GPUS,
    NOT_FOUND_TERMINATE,
    POD_NOT_FOUND,
    STOCK_LEVELS,
    AccountKeys,
    Fault,
    GpuSpec,
    PodLedgerEntry,
    PodView,
    PortMapping,
    RunpodError,
    gpu_by_id,
    price_for,
)
from tests.world._runpod_v2state import RateLimiter, RequestRecord, V2Knobs
from tests.world._runpod_volumes import disks_on_create, disks_on_terminate, reset_volumes

__all__ = ["World"]


class World:
    """Everything the fake knows. All public methods take the lock; callers never need to."""

    def __init__(
        self,
        *,
        boot_delay: float,
        ssh_host: str,
        ssh_port: int | None,
        pub_key: str = "",
        api_key: str | None = None,
        authorize_key: Callable[[str], None] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.ssh_host = ssh_host
        self.ssh_port = ssh_port
        self.authorize_key = authorize_key
        self._initial = (boot_delay, pub_key)
        self._offset = 0.0
        self.boot_delay = boot_delay
        self.never_boot = False
        self.latency = 0.0
        self.accounts: dict[str, Account] = {}
        self._keys: dict[str, tuple[Account, bool]] = {}
        self.stock: dict[str, int] = {}
        # GPU types the catalog shows in stock whose creates still fail with "no capacity",
        # as happens on Runpod between reading lowestPrice and deploying.
        self.phantom_stock: set[str] = set()
        self.faults: list[Fault] = []
        self.random_faults: RandomFaults | None = None
        self.bills: dict[str, Bill] = {}
        self.v2 = V2Knobs()
        self.limiter = RateLimiter()
        self.requests: list[RequestRecord] = []
        self.main = self.create_account(api_key=api_key, pub_key=pub_key)
        self.reset()

    # ---- clock -------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() + self._offset

    def wall(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self._offset += seconds

    # ---- accounts and keys -------------------------------------------------------------------
    def create_account(self, *, api_key: str | None = None, pub_key: str = "") -> AccountKeys:
        with self.lock:
            acc_id = rand_id(10)
            account = Account(
                acc_id,
                api_key or f"rpa_{rand_id(40).upper()}",
                f"rpa_{rand_id(40).upper()}",
                f"{acc_id}@example.invalid",
                pub_key,
            )
            self.accounts[acc_id] = account
            self._keys[account.api_key] = (account, False)
            self._keys[account.read_only_key] = (account, True)
            return AccountKeys(acc_id, account.api_key, account.read_only_key)

    def resolve_key(self, key: str | None) -> tuple[Account, bool] | None:
        """(account, read_only) for a known key, else None."""
        with self.lock:
            return self._keys.get(key) if key else None

    def account(self, account_id: str | None) -> Account:
        with self.lock:
            return self.accounts[account_id or self.main.account_id]

    def reset(self) -> None:
        """Fresh world for the next test: default stock, no pods, faults, ledger or latency."""
        with self.lock:
            self.boot_delay, pub_key = self._initial
            self.never_boot = False
            self.latency = 0.0
            self.faults.clear()
            self.random_faults = None
            self.bills.clear()
            self.v2 = V2Knobs()
            self.limiter = RateLimiter()
            self.requests.clear()
            self.stock = {g.id: g.default_stock for g in CATALOG}
            self.phantom_stock = set()
            for account in self.accounts.values():
                account.pods.clear()
            on_reset(self)
            reset_volumes(self)
            self.accounts[self.main.account_id].pub_key = pub_key

    # ---- catalog -----------------------------------------------------------------------------
    def set_stock(self, gpu_type_id: str, stock: int | str | None) -> None:
        """Available GPUs of a type; "High"/"Medium"/"Low"/"None"/None map to counts."""
        with self.lock:
            gpu = gpu_by_id(gpu_type_id)
            if gpu is None:
                raise KeyError(gpu_type_id)
            self.stock[gpu.id] = stock if isinstance(stock, int) else STOCK_LEVELS[str(stock)]

    def available(self, gpu_type_id: str) -> int:
        with self.lock:
            return self.stock.get(gpu_type_id, 0)

    # ---- faults ------------------------------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, request_text: str, *, after: bool = False) -> Fault | None:
        """Consume one matching queued fault of this phase (before or after routing)."""
        with self.lock:
            for fault in self.faults:
                if fault.after != after:
                    continue
                if fault.match is None or fault.match in request_text:
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                    return replace(fault)
            return None

    # ---- pods --------------------------------------------------------------------------------
    def deploy(
        self, account: Account, spec: dict[str, Any], *, bid_per_gpu: float | None = None
    ) -> Pod:
        """podFindAndDeployOnDemand / podRentInterruptable / POST /v2/pods."""
        with self.lock:
            wanted = [spec["gpuTypeId"]] if spec.get("gpuTypeId") else spec.get("gpuTypeIdList")
            gpus = [g for g in (gpu_by_id(str(c)) for c in wanted or []) if g is not None]
            if not gpus:
                raise RunpodError(GPU_NOT_FOUND)
            count = int(spec.get("gpuCount") or 1)
            cloud = str(spec.get("cloudType") or "ALL")
            spot = bid_per_gpu is not None
            for gpu in gpus:
                price = price_for(gpu, cloud, spot=spot)
                if price is None or count > gpu.max_gpu_count or self.stock[gpu.id] < count:
                    continue
                if gpu.id in self.phantom_stock:  # listed in stock, gone when asked for
                    continue
                pod = self._new_pod(
                    account,
                    spec,
                    gpu,
                    count,
                    cloud,
                    bid_per_gpu if bid_per_gpu is not None else price,
                    "INTERRUPTABLE" if spot else "RESERVED",
                )
                self._take_stock(pod)
                self._boot(pod)
                return pod
            raise RunpodError(NO_CAPACITY_SPOT if spot else NO_CAPACITY)

    def add_pod(
        self, account: Account, spec: dict[str, Any], *, foreign: bool, status: str = "RUNNING"
    ) -> Pod:
        """A pod that already exists on the account (made elsewhere), booted, holding no stock."""
        with self.lock:
            gpu = gpu_by_id(str(spec.get("gpuTypeId"))) or CATALOG[0]
            pod = self._new_pod(
                account,
                spec,
                gpu,
                int(spec.get("gpuCount") or 1),
                "ALL",
                price_for(gpu, "ALL") or 0.0,
                "RESERVED",
            )
            pod.foreign = foreign
            self._boot(pod, delay=0.0)
            if status != "RUNNING":
                self._set_exited(pod)
            return pod

    def _new_pod(
        self,
        account: Account,
        spec: dict[str, Any],
        gpu: GpuSpec,
        count: int,
        cloud: str,
        price: float,
        pod_type: str,
    ) -> Pod:
        env = [(str(e["key"]), str(e["value"])) for e in spec.get("env") or []]
        if spec.get("startSsh") and account.pub_key and "PUBLIC_KEY" not in dict(env):
            env.append(("PUBLIC_KEY", account.pub_key))
        wall = self.wall()
        pod = Pod(
            id=unique_id(self.bills),
            account_id=account.id,
            name=str(spec.get("name") or ""),
            image_name=str(spec.get("imageName") or ""),
            gpu=gpu,
            gpu_count=count,
            cloud_type=cloud,
            price_per_gpu=price,
            env=env,
            ports=str(spec.get("ports") or "").replace(" ", ""),
            docker_args=str(spec.get("dockerArgs") or ""),
            container_disk_in_gb=int(spec.get("containerDiskInGb") or 0),
            volume_in_gb=int(spec.get("volumeInGb") or 0),
            volume_mount_path=str(spec.get("volumeMountPath") or "/workspace"),
            vcpu_count=max(int(spec.get("minVcpuCount") or 0), gpu.vcpu_per_gpu * count),
            memory_in_gb=max(int(spec.get("minMemoryInGb") or 0), gpu.memory_per_gpu * count),
            pod_type=pod_type,
            secure=cloud != "COMMUNITY",
            inputs=dict(spec),
            created_at=wall,
            last_status_change=f"Rented by User: {js_date(wall)}",
        )
        account.pods[pod.id] = pod
        self.bills[pod.id] = Bill(pod, self.now(), running_since=self.now())
        # A v2 create without startSsh: true gets no SSH service (v2 defaults it to false);
        # GraphQL inputs may omit it. The pod's own key and env either way.
        on_pod_created(self, pod, authorize=bool(spec.get("startSsh", True)))
        disks_on_create(self, pod)  # its own disk, or its network volume (when disks are on)
        return pod

    def _take_stock(self, pod: Pod) -> None:
        self.stock[pod.gpu.id] -= pod.gpu_count
        pod.holds_stock = True

    def _release_stock(self, pod: Pod) -> None:
        if pod.holds_stock:
            self.stock[pod.gpu.id] = self.stock.get(pod.gpu.id, 0) + pod.gpu_count
            pod.holds_stock = False

    def _close_intervals(self, bill: Bill) -> None:
        now = self.now()
        if bill.running_since is not None:
            bill.running_seconds += now - bill.running_since
        if bill.exited_since is not None:
            bill.exited_seconds += now - bill.exited_since
        bill.running_since = bill.exited_since = None

    def _boot(self, pod: Pod, delay: float | None = None) -> None:
        pod.desired_status = "RUNNING"
        pod.last_started_at = self.wall()
        delay = self.boot_delay if delay is None else delay
        pod.boot_from, pod.failed = self.now(), False
        pod.boot_at = math.inf if self.never_boot else self.now() + delay
        start_container(self, pod, pod.boot_at - self.now())  # its start command, if any
        pod.public_ports = {
            port: self.ssh_port
            if port == 22 and self.ssh_port is not None
            else 10000 + secrets.randbelow(50000)
            for port, _kind in port_specs(pod.ports)
        }

    def _set_exited(self, pod: Pod, reason: str = "User") -> None:
        stop_container(self, pod.id)
        self._release_stock(pod)
        pod.desired_status = "EXITED"
        pod.boot_at = math.inf
        pod.last_status_change = f"Exited by {reason}: {js_date(self.wall())}"
        bill = self.bills[pod.id]
        self._close_intervals(bill)
        bill.exited_since = self.now()
        # A stopped pod's container is gone: so are its processes (the job, its SSH
        # sessions), as on Runpod; only its volume stays.
        kill_pod_processes(pod.id)

    def get_pod(self, account: Account, pod_id: str) -> Pod | None:
        with self.lock:
            return account.pods.get(pod_id)

    def stop(self, account: Account, pod_id: str) -> Pod:
        with self.lock:
            pod = account.pods.get(pod_id)
            if pod is None:
                raise RunpodError(POD_NOT_FOUND, status=404)
            if pod.desired_status == "RUNNING":
                self._set_exited(pod)
            return pod

    def resume(self, account: Account, pod_id: str, gpu_count: int | None = None) -> Pod:
        """Restart on the same host; fails like Runpod when its GPUs were taken meanwhile."""
        with self.lock:
            pod = account.pods.get(pod_id)
            if pod is None:
                raise RunpodError(POD_NOT_FOUND, status=404)
            if pod.desired_status == "RUNNING":
                return pod
            count = gpu_count or pod.gpu_count
            if self.stock.get(pod.gpu.id, 0) < count:
                raise RunpodError(NOT_ENOUGH_GPUS)
            pod.gpu_count = count
            self._take_stock(pod)
            pod.last_status_change = f"Rented by User: {js_date(self.wall())}"
            bill = self.bills[pod.id]
            self._close_intervals(bill)
            bill.running_since = self.now()
            self._boot(pod)
            return pod

    def terminate(self, account: Account, pod_id: str, *, by: str = "api") -> None:
        with self.lock:
            pod = account.pods.pop(pod_id, None)
            if pod is None:
                raise RunpodError(NOT_FOUND_TERMINATE, status=404)
            self._release_stock(pod)
            pod.desired_status, pod.boot_at = "TERMINATED", math.inf
            bill = self.bills[pod.id]
            self._close_intervals(bill)
            bill.terminated_clock, bill.terminated_at, bill.terminated_by = (
                self.now(),
                self.wall(),
                by,
            )
            on_pod_terminated(self, pod_id)
            disks_on_terminate(self, pod_id)  # a pod's disk goes with it; a volume stays

    def find(self, pod_id: str) -> tuple[Account, Pod]:
        """Locate a live pod on any account (control surface); KeyError when absent."""
        with self.lock:
            for account in self.accounts.values():
                if pod_id in account.pods:
                    return account, account.pods[pod_id]
            raise KeyError(pod_id)

    def kill(self, pod_id: str, *, vanish: bool) -> None:
        """Runpod-side death: the pod exits under the client, or disappears entirely."""
        with self.lock:
            account, pod = self.find(pod_id)
            if vanish:
                self.terminate(account, pod_id, by="runpod")
            else:
                self._set_exited(pod, reason="Runpod")

    def fail_pod(self, pod_id: str) -> None:
        """The pod turns unrecoverable: v2 status ERROR, runtime null."""
        with self.lock:
            pod = self.find(pod_id)[1]
            pod.failed, pod.boot_at = True, math.inf

    def log_request(self, record: RequestRecord) -> None:
        with self.lock:
            self.requests.append(record)

    def key_kind(self, key: str | None) -> str:
        """How a request authenticated, for the request log (never the key itself)."""
        caller = self.resolve_key(key)
        if caller is None:
            return "none" if not key else "unknown"
        return "read_only" if caller[1] else "account"

    def hang_boot(self, pod_id: str) -> None:
        """This pod's runtime never appears (or disappears, if it had booted)."""
        with self.lock:
            self.find(pod_id)[1].boot_at = math.inf

    def set_never_boot(self, enabled: bool) -> None:
        """While enabled, pods started from now on never boot; disabling boots stuck pods."""
        with self.lock:
            self.never_boot = enabled
            if not enabled:
                for account in self.accounts.values():
                    for pod in account.pods.values():
                        if pod.desired_status == "RUNNING" and pod.boot_at == math.inf:
                            pod.boot_at = self.now() + self.boot_delay

    # ---- reading -----------------------------------------------------------------------------
    def booted_at(self, pod: Pod) -> float | None:
        """Clock time the runtime appeared, or None while booting / stopped."""
        with self.lock:
            if pod.desired_status != "RUNNING" or self.now() < pod.boot_at:
                return None
            return pod.boot_at

    def runtime_ports(self, pod: Pod) -> list[PortMapping]:
        """Private entry first, then the public one, so first-match clients pick wrong."""
        out: list[PortMapping] = []
        for port, kind in port_specs(pod.ports):
            out.append(PortMapping(pod.private_ip, False, port, port, kind))
            if kind == "tcp":
                out.append(PortMapping(self.ssh_host, True, port, pod.public_ports[port], kind))
        return out

    def view(self, pod: Pod) -> PodView:
        with self.lock:
            return PodView(
                pod.id,
                pod.account_id,
                pod.name,
                pod.desired_status,
                pod.gpu.id,
                pod.gpu_count,
                pod.image_name,
                pod.env_dict(),
                pod.ports,
                pod.cost_per_hr,
                self.booted_at(pod) is not None,
                pod.foreign,
                pod.public_ports.get(22),
                dict(pod.inputs),
            )

    def ledger(self) -> list[PodLedgerEntry]:
        with self.lock:
            now = self.now()
            return [ledger_entry(bill, now) for bill in self.bills.values()]
