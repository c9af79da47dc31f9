"""Contract tests of thinnka's REST v2 Runpod client against the emulator (docs/runpod.md).

One test per documented answer: 201/204/404 for the lifecycle, 400 capacity, 401, 402, 403,
404, 409, 422, 429 with Retry-After, 5xx and dropped connections, plus the catalog (price x
count, per cloud), ssh.direct as the only SSH endpoint, billing and the rate-limit pacer.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.world._runpod_records import NO_CAPACITY
from tests.world.runpod import FakeRunpod
from thinnka.clients.runpod import PodSpec
from thinnka.clients.runpod.graphql import GraphQLRunpod
from thinnka.clients.runpod.problems import InsufficientFunds
from thinnka.clients.runpod.ratelimit import RatePacer, parse_rate_limit
from thinnka.clients.runpod.rest import RestRunpod, create_body
from thinnka.errors import (
    AuthError,
    CapacityError,
    ConfigError,
    NotFoundError,
    RemoteError,
    StepTimeout,
    TransientError,
)
from thinnka.handlers.connect import wait_for_ssh_port
from thinnka.handlers.terminate import terminate_and_confirm
from thinnka.services import LiveServices
from thinnka.settings import load_settings

L40S = "NVIDIA L40S"


def _client(fake: FakeRunpod, key: str | None = "", **kwargs: object) -> RestRunpod:
    defaults: dict[str, object] = {"backoff_max": 0.05}
    defaults.update(kwargs)
    return RestRunpod(fake.base_url, fake.api_key if key == "" else key, **defaults)  # type: ignore[arg-type]


def _spec(cloud: str = "SECURE", gpu: str = L40S, **changes: object) -> PodSpec:
    values: dict[str, object] = dict(
        name="thinnka-test-1x-r-abc123", image="runpod/pytorch:test", gpu_type_id=gpu,
        gpu_count=1, cloud_type=cloud, volume_gb=40, container_disk_gb=40, min_vcpu=4,
        min_memory_gb=16, env={"THINNKA_RUN_ID": "r-abc123", "THINNKA_OWNER": "inst-x"},
    )  # fmt: skip
    values.update(changes)
    return PodSpec(**values)  # type: ignore[arg-type]


def _v2_requests(fake: FakeRunpod, method: str | None = None, path: str = "") -> list[object]:
    return [
        r
        for r in fake.requests()
        if r.surface == "v2" and (method is None or r.method == method) and path in r.path
    ]


# ---- catalog ---------------------------------------------------------------------------------
def test_both_clouds_of_the_catalog_are_asked_at_once(runpod_account: FakeRunpod) -> None:
    """--cloud-type ALL reads the catalog once per cloud; the two requests overlap, so a slow
    network costs one round trip before the create, not two."""
    runpod_account.set_latency(1.0)
    started = time.monotonic()
    offers = _client(runpod_account).gpu_offers(1)
    took = time.monotonic() - started
    assert {o.id: o for o in offers}[L40S].clouds == ("SECURE", "COMMUNITY")
    assert len(_v2_requests(runpod_account, "GET", "/catalog/gpus")) == 2
    assert took < 2 * 1.0, f"the clouds were asked one after the other ({took:.2f} s)"


def test_catalog_prices_per_gpu_times_count_and_clouds_in_order(
    runpod_account: FakeRunpod,
) -> None:
    client = _client(runpod_account)
    one = {o.id: o for o in client.gpu_offers(1)}
    two = {o.id: o for o in client.gpu_offers(2)}
    assert "unknown" not in one
    l40s = one[L40S]
    assert (l40s.price_per_gpu_hour, l40s.stock, l40s.memory_gb) == (0.86, "High", 48)
    assert l40s.clouds == ("SECURE", "COMMUNITY")  # --cloud-type ALL: SECURE first
    assert two[L40S].price_per_hour == pytest.approx(2 * 0.86)
    assert one["NVIDIA H200"].clouds == ("SECURE",)  # not offered on COMMUNITY
    runpod_account.set_cloud_capacity(L40S, "SECURE", False)
    l40s = {o.id: o for o in client.gpu_offers(1)}[L40S]
    assert l40s.clouds == ("COMMUNITY",) and l40s.price_per_gpu_hour == 0.79
    only_secure = {o.id: o for o in client.gpu_offers(1, "SECURE")}[L40S]
    assert only_secure.clouds == () and not only_secure.in_stock
    assert {r.path for r in runpod_account.requests()} == {"/v2/catalog/gpus"}


def test_catalog_without_a_key_reads_the_keyless_graphql_catalog_or_says_to_set_it(
    runpod_account: FakeRunpod,
) -> None:
    offers = {o.id: o for o in _client(runpod_account, key=None).gpu_offers(1)}
    assert offers[L40S].in_stock and offers[L40S].clouds == ("SECURE", "COMMUNITY")
    assert {(r.surface, r.key) for r in runpod_account.requests()} == {("graphql", "none")}
    runpod_account.inject_faults(status=410, count=10, match="/graphql")  # GraphQL retired
    with pytest.raises(ConfigError, match="RUNPOD_API_KEY"):
        _client(runpod_account, key=None).gpu_offers(1)


# ---- lifecycle -------------------------------------------------------------------------------
def test_pod_lifecycle_waits_for_ssh_direct_and_confirms_deletes(
    runpod_account: FakeRunpod,
) -> None:
    client = _client(runpod_account)
    pod = client.create_pod(_spec())
    assert pod.desired_status == "PROVISIONING" and pod.ports is None and pod.public_ssh() is None
    assert pod.env["THINNKA_RUN_ID"] == "r-abc123" and pod.cost_per_hr == 0.86
    assert pod.gpu_type_id == L40S
    body = runpod_account.pod(pod.id)
    assert body is not None and body.inputs["startSsh"] is True and "22/tcp" in body.ports
    runpod_account.advance_time(5)
    seen = client.get_pod(pod.id)
    assert seen is not None and seen.is_running
    public = seen.public_ssh()
    assert public is not None and (public.ip, public.public_port) == (
        "127.0.0.1",
        runpod_account.world.ssh_port,
    )
    assert [p.id for p in client.list_pods()] == [pod.id]
    client.terminate_pod(pod.id)
    assert client.get_pod(pod.id) is None and client.list_pods() == []
    with pytest.raises(NotFoundError):
        client.terminate_pod(pod.id)
    assert [r.status for r in _v2_requests(runpod_account, "DELETE")] == [204, 404]


def test_the_create_body_maps_every_option_to_a_v2_field() -> None:
    body = create_body(_spec(gpu_count=2, min_vcpu=9, min_memory_gb=32, volume_gb=100))
    assert body["gpu"] == {"id": L40S, "count": 2, "minVcpuCountPerGpu": 5, "minRamPerGpu": 16}
    assert body["cloud"] == "SECURE" and body["ports"] == ["22/tcp"] and body["startSsh"] is True
    assert body["mounts"] == {"persistent": {"size": 100, "path": "/workspace"}}
    assert body["disk"] == 40 and body["env"]["THINNKA_OWNER"] == "inst-x"
    assert "cloud" not in create_body(_spec(cloud="ALL"))  # old plans: v2's default, SECURE
    assert "mounts" not in create_body(_spec(volume_gb=0))
    assert "args" not in body  # no start command: the image's own CMD
    assert create_body(_spec(start_command="sh -c 'x'"))["args"] == "sh -c 'x'"


@pytest.mark.parametrize("transport", ["rest", "graphql"])
def test_the_start_command_reaches_the_pod_on_both_transports(
    runpod_account: FakeRunpod, transport: str
) -> None:
    """REST v2 ``args`` and GraphQL ``dockerArgs``: the pod runs it once it boots, with
    its env (the emulator plays the container)."""
    runpod_account.set_boot_delay(0.0)
    client: RestRunpod | GraphQLRunpod = (
        _client(runpod_account)
        if transport == "rest"
        else GraphQLRunpod(runpod_account.base_url, runpod_account.api_key)
    )
    command = "sh -c 'echo started-$RUNPOD_POD_ID-$THINNKA_RUN_ID; sleep 30'"
    pod = client.create_pod(_spec(start_command=command))
    deadline = time.monotonic() + 10
    while f"started-{pod.id}-r-abc123" not in runpod_account.container_log(pod.id):
        assert time.monotonic() < deadline, runpod_account.container_log(pod.id)
        time.sleep(0.05)
    client.terminate_pod(pod.id)


def test_waiting_for_ssh_never_takes_the_proxy_or_a_runtime_port(
    runpod_account: FakeRunpod,
) -> None:
    client = _client(runpod_account)
    runpod_account.set_community_public_ip(False)
    pod = client.create_pod(_spec(cloud="COMMUNITY"))
    runpod_account.advance_time(5)
    seen = client.get_pod(pod.id)
    assert seen is not None and seen.is_running and seen.ports  # runtime is there, direct is not
    ctx = SimpleNamespace(services=SimpleNamespace(runpod=client), check_cancelled=lambda: None)
    with pytest.raises(StepTimeout, match="SSH port"):
        wait_for_ssh_port(ctx, pod.id, time.monotonic() + 1.2)  # type: ignore[arg-type]
    runpod_account.fail_pod(pod.id)
    with pytest.raises(RemoteError, match="ERROR") as ended:
        wait_for_ssh_port(ctx, pod.id, time.monotonic() + 30)  # type: ignore[arg-type]
    assert ended.value.reason == "pod_gone"


# ---- every error status ----------------------------------------------------------------------
def test_400_no_capacity_is_a_capacity_error_and_leaves_nothing(runpod_account: FakeRunpod) -> None:
    runpod_account.set_stock(L40S, 0)
    with pytest.raises(CapacityError, match="no longer any instances available"):
        _client(runpod_account).create_pod(_spec())
    runpod_account.set_stock(L40S, 10)
    runpod_account.set_cloud_capacity(L40S, "SECURE", False)
    with pytest.raises(CapacityError, match=NO_CAPACITY[:30]):
        _client(runpod_account).create_pod(_spec("SECURE"))
    assert runpod_account.pods() == []
    assert _client(runpod_account).create_pod(_spec("COMMUNITY")).id


def test_401_is_never_retried_and_never_shows_the_key(runpod_account: FakeRunpod) -> None:
    started = time.monotonic()
    with pytest.raises(AuthError, match="RUNPOD_API_KEY") as refused:
        _client(runpod_account, key="rpa_WRONGKEY123").list_pods()
    assert time.monotonic() - started < 1.0 and "rpa_WRONGKEY123" not in str(refused.value)
    assert [r.status for r in runpod_account.requests()] == [401]


def test_402_says_to_add_funds_and_is_not_retried(runpod_account: FakeRunpod) -> None:
    runpod_account.set_balance_exhausted()
    with pytest.raises(InsufficientFunds, match="Add funds") as refused:
        _client(runpod_account).create_pod(_spec())
    assert not isinstance(refused.value, CapacityError) and not refused.value.retryable
    assert len(_v2_requests(runpod_account, "POST")) == 1


def test_403_permission_and_forbidden_pool(runpod_account: FakeRunpod) -> None:
    read_only = _client(runpod_account, key=runpod_account.read_only_key)
    with pytest.raises(AuthError, match="permission"):
        read_only.create_pod(_spec())
    runpod_account.forbid_pool(L40S)
    with pytest.raises(CapacityError, match="pool"):  # the next candidate may be allowed
        _client(runpod_account).create_pod(_spec())


def test_404_get_is_none_and_delete_is_not_found(runpod_account: FakeRunpod) -> None:
    client = _client(runpod_account)
    assert client.get_pod("nosuchpod") is None
    with pytest.raises(NotFoundError):
        client.terminate_pod("nosuchpod")


def test_409_is_a_remote_error_not_retried(runpod_account: FakeRunpod) -> None:
    pod = _client(runpod_account).create_pod(_spec())
    runpod_account.inject_faults(status=409, match="DELETE /v2/pods")
    with pytest.raises(RemoteError, match="409") as conflict:
        _client(runpod_account).terminate_pod(pod.id)
    assert not conflict.value.retryable and len(_v2_requests(runpod_account, "DELETE")) == 1


def test_422_is_a_bug_report_that_names_the_field(runpod_account: FakeRunpod) -> None:
    with pytest.raises(RemoteError, match=r"\$\.image") as invalid:
        _client(runpod_account).create_pod(_spec(image=""))
    assert invalid.value.reason == "internal" and "bug in thinnka" in invalid.value.message
    assert runpod_account.pods() == []


def test_429_waits_for_retry_after_then_succeeds(runpod_account: FakeRunpod) -> None:
    runpod_account.inject_faults(status=429, retry_after=1, match="GET /v2/pods")
    started = time.monotonic()
    assert _client(runpod_account).list_pods() == []
    assert time.monotonic() - started >= 0.9
    assert [r.status for r in _v2_requests(runpod_account, "GET")] == [429, 200]


def test_a_create_refused_with_429_is_retried_once_and_creates_one_pod(
    runpod_account: FakeRunpod,
) -> None:
    runpod_account.inject_faults(status=429, retry_after=0, match="POST /v2/pods")
    assert _client(runpod_account).create_pod(_spec()).id
    assert len(runpod_account.pods()) == 1


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 503}, {"drop": True}])
def test_5xx_and_drops_are_retried_with_bounds(
    runpod_account: FakeRunpod, fault: dict[str, object]
) -> None:
    runpod_account.inject_faults(count=2, match="GET /v2/pods", **fault)  # type: ignore[arg-type]
    assert _client(runpod_account).list_pods() == []
    runpod_account.inject_faults(count=50, match="GET /v2/pods", **fault)  # type: ignore[arg-type]
    with pytest.raises(TransientError):
        _client(runpod_account, attempts=3).list_pods()
    runpod_account.clear_faults()


def test_a_create_whose_answer_is_lost_is_not_retried_but_the_pod_exists(
    runpod_account: FakeRunpod,
) -> None:
    runpod_account.inject_faults(status=502, after=True, match="POST /v2/pods")
    with pytest.raises(TransientError):
        _client(runpod_account).create_pod(_spec())
    pods = runpod_account.pods()
    assert len(pods) == 1 and pods[0].env["THINNKA_RUN_ID"] == "r-abc123"  # adoptable by tag
    assert len(_v2_requests(runpod_account, "POST")) == 1


# ---- billing and rate limits -----------------------------------------------------------------
def test_billed_cost_once_billing_has_it(runpod_account: FakeRunpod) -> None:
    client = _client(runpod_account)
    runpod_account.set_billing_delay(3600)
    pod = client.create_pod(_spec())
    runpod_account.advance_time(1800)
    assert client.billed_cost(pod.id) is None  # not billed yet
    runpod_account.set_billing_delay(0)
    billed = client.billed_cost(pod.id)
    assert billed is not None and billed == pytest.approx(0.86 / 2, rel=0.01)


def test_rate_limit_headers_pace_requests_so_no_429_is_met(runpod_account: FakeRunpod) -> None:
    runpod_account.set_rate_limit(("second", 4, 1.0))
    client = _client(runpod_account)
    started = time.monotonic()
    for _ in range(6):  # more than the quota of one window
        client.list_pods()
    assert time.monotonic() - started >= 1.0
    assert all(r.status == 200 for r in runpod_account.requests())
    assert client.pacer.waited_s > 0


def test_rate_limit_header_parsing_and_a_too_long_wait_is_refused() -> None:
    windows = parse_rate_limit('"minute";r=0;t=12, "hour";r=2800;t=1812, "day";r=49500;t=45012')
    assert [(w.name, w.remaining, w.reset_s) for w in windows] == [
        ("minute", 0, 12.0),
        ("hour", 2800, 1812.0),
        ("day", 49500, 45012.0),
    ]
    slept: list[float] = []
    pacer = RatePacer(max_wait_s=30, clock=lambda: 100.0, sleep=slept.append)
    pacer.observe({"RateLimit": '"minute";r=0;t=12'})
    assert pacer.wait() == 0.0 and slept == [12.0]
    pacer.observe({"RateLimit": '"day";r=0;t=45012'})
    assert pacer.wait() == pytest.approx(45012.0)  # not slept: the caller fails clearly


# ---- transport choice and confirmed terminate ------------------------------------------------
def test_the_transport_is_chosen_by_thinnka_runpod_api(tmp_path: Path) -> None:
    def runpod_for(**environ: str) -> object:
        settings = load_settings(environ={"THINNKA_STATE_DIR": str(tmp_path), **environ})
        return LiveServices(settings).runpod

    assert isinstance(runpod_for(), RestRunpod)
    assert isinstance(runpod_for(THINNKA_RUNPOD_API="graphql"), GraphQLRunpod)
    assert isinstance(runpod_for(THINNKA_RUNPOD_API="REST"), RestRunpod)
    with pytest.raises(ConfigError, match="THINNKA_RUNPOD_API"):
        runpod_for(THINNKA_RUNPOD_API="v1")


def test_a_404_on_delete_that_a_read_contradicts_is_asked_again(
    runpod_account: FakeRunpod,
) -> None:
    client = _client(runpod_account)
    pod = client.create_pod(_spec())
    runpod_account.inject_faults(status=404, match="DELETE /v2/pods")
    terminate_and_confirm(client, pod.id, time.monotonic() + 4)
    assert runpod_account.pod(pod.id) is None
    assert [r.status for r in _v2_requests(runpod_account, "DELETE")] == [404, 204]
