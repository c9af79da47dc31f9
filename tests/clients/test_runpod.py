"""thinnka's Runpod client against the Runpod emulator: records, errors, retries."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from tests.world.runpod import FakeRunpod
from thinnka.clients.runpod import PodSpec
from thinnka.clients.runpod.graphql import GraphQLRunpod
from thinnka.errors import (
    AuthError,
    CapacityError,
    NotFoundError,
    RemoteError,
    StepTimeout,
    TransientError,
)
from thinnka.handlers.connect import wait_for_ssh_port


def _client(fake: FakeRunpod, key: str | None = None, **kwargs: object) -> GraphQLRunpod:
    defaults: dict[str, object] = {"backoff_max": 0.05}
    defaults.update(kwargs)
    return GraphQLRunpod(fake.base_url, key if key is not None else fake.api_key, **defaults)  # type: ignore[arg-type]


def _spec(name: str = "thinnka-test-1x-r-abc123", gpu: str = "NVIDIA L40S") -> PodSpec:
    return PodSpec(
        name=name, image="runpod/pytorch:test", gpu_type_id=gpu, gpu_count=1, cloud_type="ALL",
        volume_gb=40, container_disk_gb=40, min_vcpu=4, min_memory_gb=16,
        env={"THINNKA_RUN_ID": "r-abc123", "THINNKA_OWNER": "inst-x"},
    )  # fmt: skip


def test_catalog_is_readable_without_a_key(runpod_account: FakeRunpod) -> None:
    offers = GraphQLRunpod(runpod_account.base_url, None).gpu_offers(1)
    by_id = {offer.id: offer for offer in offers}
    assert "NVIDIA L40S" in by_id and "unknown" not in by_id
    l40s = by_id["NVIDIA L40S"]
    assert l40s.memory_gb == 48 and l40s.price_per_gpu_hour and l40s.in_stock


def test_pod_lifecycle_and_the_public_ssh_port(runpod_account: FakeRunpod) -> None:
    client = _client(runpod_account)
    pod = client.create_pod(_spec())
    assert pod.is_running and pod.ports is None  # runtime is null right after create
    assert pod.env["THINNKA_RUN_ID"] == "r-abc123" and pod.cost_per_hr
    runpod_account.advance_time(5)  # past the emulator's boot delay
    seen = client.get_pod(pod.id)
    assert seen is not None and seen.ports
    first_22 = next(p for p in seen.ports if p.private_port == 22)
    assert not first_22.is_ip_public, "the emulator lists the private entry first"
    public = seen.public_ssh()
    assert public is not None and public.ip == "127.0.0.1" and public.is_ip_public
    assert [p.id for p in client.list_pods()] == [pod.id]
    client.terminate_pod(pod.id)
    assert client.get_pod(pod.id) is None
    with pytest.raises(NotFoundError):
        client.terminate_pod(pod.id)


def test_no_capacity_is_a_capacity_error(runpod_account: FakeRunpod) -> None:
    runpod_account.set_stock("NVIDIA L40S", 0)
    with pytest.raises(CapacityError, match="no longer any instances available"):
        _client(runpod_account).create_pod(_spec())
    assert runpod_account.pods() == []


def test_a_bad_key_is_never_retried_and_never_shown(runpod_account: FakeRunpod) -> None:
    client = _client(runpod_account, key="rpa_WRONGKEY123")
    started = time.monotonic()
    with pytest.raises(AuthError) as refused:
        client.list_pods()
    assert time.monotonic() - started < 1.0
    assert "rpa_WRONGKEY123" not in str(refused.value)


def test_a_read_only_key_cannot_create(runpod_account: FakeRunpod) -> None:
    with pytest.raises(AuthError, match="Unauthorized"):
        _client(runpod_account, key=runpod_account.read_only_key).create_pod(_spec())


@pytest.mark.parametrize("fault", [{"status": 429}, {"status": 500}, {"drop": True}])
def test_rate_limits_server_errors_and_drops_are_retried(
    runpod_account: FakeRunpod, fault: dict[str, object]
) -> None:
    runpod_account.inject_faults(count=2, **fault)  # type: ignore[arg-type]
    assert _client(runpod_account).list_pods() == []


def test_retries_are_bounded(runpod_account: FakeRunpod) -> None:
    runpod_account.inject_faults(status=503, count=50)
    with pytest.raises(TransientError, match="503"):
        _client(runpod_account, attempts=3).list_pods()
    runpod_account.clear_faults()


def test_create_is_not_blindly_retried(runpod_account: FakeRunpod) -> None:
    """A create that failed in transit may have landed; the provision step adopts instead."""
    runpod_account.inject_faults(status=500, count=1, match="podFindAndDeployOnDemand")
    with pytest.raises(TransientError):
        _client(runpod_account).create_pod(_spec())


def test_a_create_refused_with_429_is_retried_it_was_never_carried_out(
    runpod_account: FakeRunpod,
) -> None:
    """Runpod answers 429 before acting: the same create again is safe (and REST does it)."""
    runpod_account.inject_faults(status=429, count=2, retry_after=0.1, match="podFindAndDeploy")
    pod = _client(runpod_account).create_pod(_spec())
    assert [entry.pod_id for entry in runpod_account.ledger()] == [pod.id]
    asked = [r.status for r in runpod_account.requests() if r.surface == "graphql"]
    assert asked == [429, 429, 200]
    runpod_account.inject_faults(status=429, count=50, match="podFindAndDeploy")
    with pytest.raises(TransientError, match="429"):  # bounded, like every retry
        _client(runpod_account, attempts=3).create_pod(_spec())
    assert len(runpod_account.ledger()) == 1
    runpod_account.clear_faults()


def _waiter(fake: FakeRunpod) -> SimpleNamespace:
    return SimpleNamespace(
        services=SimpleNamespace(runpod=_client(fake)), check_cancelled=lambda: None
    )


def test_waiting_for_ssh_takes_the_public_port_and_gives_up_at_the_deadline(
    runpod_account: FakeRunpod,
) -> None:
    client = _client(runpod_account)
    pod = client.create_pod(_spec())
    ready = wait_for_ssh_port(_waiter(runpod_account), pod.id, time.monotonic() + 10)  # type: ignore[arg-type]
    public = ready.public_ssh()
    assert public is not None and public.is_ip_public and public.ip == "127.0.0.1"
    runpod_account.never_boot(True)
    stuck = client.create_pod(_spec(name="thinnka-stuck-1x-r-abc124"))
    with pytest.raises(StepTimeout, match="SSH port did not become available"):
        wait_for_ssh_port(_waiter(runpod_account), stuck.id, time.monotonic() + 1.5)  # type: ignore[arg-type]


def test_a_pod_that_boots_fast_is_noticed_fast(runpod_account: FakeRunpod) -> None:
    """The poll starts quick: a pod up in 0.6 s is seen well before a second has passed.

    The waits are recorded instead of slept, each one moving the emulator's clock on.
    """
    runpod_account.set_boot_delay(0.6)
    pod = _client(runpod_account).create_pod(_spec())
    waits: list[float] = []
    warmed: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        runpod_account.advance_time(seconds)

    def warm_up() -> None:
        warmed.append(time.monotonic())
        time.sleep(0.03)  # work done while the pod boots is taken off the first wait

    waiter = _waiter(runpod_account)
    deadline = time.monotonic() + 60
    ready = wait_for_ssh_port(waiter, pod.id, deadline, while_waiting=warm_up, sleep=wait)  # type: ignore[arg-type]
    assert ready.public_ssh() is not None
    assert len(warmed) == 1 and waits[0] <= 0.1 - 0.03
    # Polled every 0.1 s: the port is seen at most one poll after it shows.
    assert sum(waits) + 0.03 <= 0.6 + 0.1 + 1e-9, f"noticed late: waited {waits}"


def test_a_slow_boot_is_polled_about_once_a_second(runpod_account: FakeRunpod) -> None:
    """After the quick first second the waits grow to 1 s: a cold pod booting for a minute
    costs about 70 requests, close to Runpod's documented example limit of 60 a minute."""
    runpod_account.set_boot_delay(60)
    pod = _client(runpod_account).create_pod(_spec())
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        runpod_account.advance_time(seconds)

    deadline = time.monotonic() + 60
    ready = wait_for_ssh_port(_waiter(runpod_account), pod.id, deadline, sleep=wait)  # type: ignore[arg-type]
    assert ready.public_ssh() is not None
    assert waits[:10] == pytest.approx([0.1] * 10, abs=0.01)
    assert max(waits) == pytest.approx(1.0, abs=0.01)
    assert sum(waits) <= 60 + 1.0 and len(waits) <= 75, waits


@pytest.mark.parametrize("vanish", [False, True])
def test_a_pod_that_dies_while_waiting_ends_the_wait_at_once(
    runpod_account: FakeRunpod, vanish: bool
) -> None:
    runpod_account.never_boot(True)
    pod = _client(runpod_account).create_pod(_spec())
    killer = threading.Timer(
        0.5, runpod_account.kill_pod, args=(pod.id,), kwargs={"vanish": vanish}
    )
    killer.start()
    started = time.monotonic()
    with pytest.raises(RemoteError, match=r"vanished|stopped") as ended:
        wait_for_ssh_port(_waiter(runpod_account), pod.id, time.monotonic() + 60)  # type: ignore[arg-type]
    killer.join()
    assert ended.value.reason == "pod_gone" and time.monotonic() - started < 5
