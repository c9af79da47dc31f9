"""Faithfulness of the Runpod emulator, checked with clients nobody here wrote.

Why these tests exist: thinnka's own Runpod tests are only as good as the emulator they run
against. The official `runpod` SDK 1.12.0 and raw httpx requests pin the emulator to the real
API's wire behaviour (docs/runpod.md) independently of thinnka's client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import runpod
from graphql import parse, validate
from runpod.api.mutations import pods as sdk_pod_mutations
from runpod.api.mutations import user as sdk_user_mutations
from runpod.api.queries import gpus as sdk_gpu_queries
from runpod.api.queries import pods as sdk_pod_queries
from runpod.api.queries import user as sdk_user_queries
from runpod.error import AuthenticationError, QueryError

from tests.world._runpod_records import NO_CAPACITY, NOT_ENOUGH_GPUS
from tests.world._runpod_sdl import SCHEMA
from tests.world.runpod import FakeRunpod

# Lets this file run before tests/conftest.py registers the plugin; harmless afterwards.
pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
POD_FIELDS = "id name desiredStatus env costPerHr runtime { ports { ip isIpPublic privatePort publicPort type } }"  # noqa: E501
CREATE = """mutation {{ podFindAndDeployOnDemand(input: {{
  name: "{name}", imageName: "runpod/pytorch:2.8.0", gpuTypeId: "{gpu}", gpuCount: {count},
  cloudType: SECURE, ports: "22/tcp,8888/http", supportPublicIp: true, startSsh: true,
  env: [{{key: "THINNKA_OWNER", value: "me"}}] }}) {{ {fields} }} }}"""


@pytest.fixture
def api(runpod_account: FakeRunpod) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=runpod_account.base_url, trust_env=False, timeout=10) as client:
        yield client


def gql(client: httpx.Client, query: str, key: str | None, **variables: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


def create(
    client: httpx.Client,
    fake: FakeRunpod,
    name: str = "thinnka-t1",
    count: int = 1,
    gpu: str = "NVIDIA L40S",
) -> dict[str, Any]:
    reply = gql(
        client, CREATE.format(name=name, gpu=gpu, count=count, fields=POD_FIELDS), fake.api_key
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]["podFindAndDeployOnDemand"]


def get_pod(client: httpx.Client, fake: FakeRunpod, pod_id: str) -> dict[str, Any] | None:
    query = f"query($i: PodFilter!) {{ pod(input: $i) {{ {POD_FIELDS} }} }}"
    reply = gql(client, query, fake.api_key, i={"podId": pod_id})
    assert reply.status_code == 200 and "errors" not in reply.json(), reply.text
    return reply.json()["data"]["pod"]


# ---- the official SDK ------------------------------------------------------------------------
@pytest.fixture
def sdk(runpod_account: FakeRunpod, monkeypatch: pytest.MonkeyPatch) -> FakeRunpod:
    """SDK 1.12.0 reads RUNPOD_API_BASE_URL on every call and appends /graphql."""
    monkeypatch.setenv("RUNPOD_API_BASE_URL", runpod_account.base_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(runpod, "api_key", runpod_account.api_key)
    return runpod_account


def test_sdk_queries_validate_against_the_schema() -> None:
    sent = [
        sdk_gpu_queries.QUERY_GPU_TYPES,
        sdk_gpu_queries.generate_gpu_query("NVIDIA L40S", 2),
        sdk_pod_queries.QUERY_POD,
        sdk_pod_queries.generate_pod_query("abc"),
        sdk_user_queries.QUERY_USER,
        sdk_user_mutations.generate_user_mutation("ssh-ed25519 AAAA x"),
        sdk_pod_mutations.generate_pod_deployment_mutation(
            "n",
            "img",
            "NVIDIA L40S",
            "SECURE",
            True,
            True,
            "EU-RO-1",
            "RO",
            1,
            20,
            10,
            4,
            16,
            "sleep 1",
            "22/tcp",
            "/workspace",
            {"A": "b"},
            "tpl",
            "vol",
            ["12.8"],
            100,
            100,
        ),
        sdk_pod_mutations.generate_pod_stop_mutation("abc"),
        sdk_pod_mutations.generate_pod_resume_mutation("abc", 1),
        sdk_pod_mutations.generate_pod_terminate_mutation("abc"),
    ]
    for query in sent:
        assert validate(SCHEMA, parse(query)) == [], query


def test_sdk_lists_and_gets_gpus(sdk: FakeRunpod) -> None:
    gpus = {g["id"]: g for g in runpod.get_gpus()}
    assert gpus["NVIDIA H100 80GB HBM3"]["displayName"] == "H100 SXM"
    assert gpus["NVIDIA H200"]["memoryInGb"] == 141
    l40s = runpod.get_gpu("NVIDIA L40S")
    assert l40s["memoryInGb"] == 48 and l40s["lowestPrice"]["uninterruptablePrice"] > 0
    with pytest.raises(ValueError, match="No GPU found"):
        runpod.get_gpu("NVIDIA  A30")


def test_sdk_pod_lifecycle(sdk: FakeRunpod) -> None:
    created = runpod.create_pod(
        "thinnka-sdk",
        "runpod/pytorch:2.8.0",
        "NVIDIA L40S",
        cloud_type="SECURE",
        ports="22/tcp",
        env={"THINNKA_OWNER": "me"},
    )
    pod_id = created["id"]
    assert created["machine"]["podHostId"].startswith(pod_id + "-")
    pod = runpod.get_pod(pod_id)
    assert pod["desiredStatus"] == "RUNNING" and "THINNKA_OWNER=me" in pod["env"]
    assert [p["id"] for p in runpod.get_pods()] == [pod_id]
    assert runpod.stop_pod(pod_id)["desiredStatus"] == "EXITED"
    assert runpod.get_pod(pod_id)["runtime"] is None
    assert runpod.resume_pod(pod_id, 1)["desiredStatus"] == "RUNNING"
    assert runpod.terminate_pod(pod_id) is None
    assert runpod.get_pod(pod_id) is None and runpod.get_pods() == []
    with pytest.raises(QueryError, match=r"^pod not found to terminate$"):
        runpod.terminate_pod(pod_id)
    (entry,) = sdk.ledger()
    assert entry.terminated and entry.cost > 0 and entry.terminated_by == "api"


def test_sdk_sees_no_capacity_and_bad_keys(
    sdk: FakeRunpod, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk.set_stock("NVIDIA H200", "None")
    with pytest.raises(QueryError) as caught:
        runpod.create_pod("thinnka-x", "img", "NVIDIA H200")
    assert str(caught.value) == NO_CAPACITY
    assert sdk.pods() == []
    monkeypatch.setattr(runpod, "api_key", "rpa_WRONG")
    with pytest.raises(AuthenticationError):
        runpod.get_pods()


# ---- GraphQL over raw HTTP -------------------------------------------------------------------
def test_validation_errors_are_http_400(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    inline = 'mutation { podStop(input: {podId: "x", bogus: 1}) { id } }'
    reply = gql(api, inline, runpod_account.api_key)
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    as_variable = "mutation($i: PodStopInput!) { podStop(input: $i) { id } }"
    reply = gql(api, as_variable, runpod_account.api_key, i={"podId": "x", "bogus": 1})
    assert reply.status_code == 400 and "bogus" in reply.json()["errors"][0]["message"]
    wrong_enum = CREATE.replace("cloudType: SECURE", 'cloudType: "SECURE"')
    assert gql(api, wrong_enum, runpod_account.api_key).status_code == 400
    assert gql(api, "{ myself { id ", runpod_account.api_key).status_code == 400


def test_auth_rules(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    fake = runpod_account
    assert gql(api, "{ myself { id } }", None).status_code == 401
    assert gql(api, "{ myself { id } }", "rpa_NOT_A_KEY").status_code == 401
    assert gql(api, 'mutation { podTerminate(input: {podId: "x"}) }', None).status_code == 401
    assert gql(api, '{ pod(input: {podId: "x"}) { id } }', None).status_code == 401
    catalog = gql(api, "{ gpuTypes { id memoryInGb } }", None)
    assert catalog.status_code == 200 and len(catalog.json()["data"]["gpuTypes"]) >= 8
    legacy = api.post(f"/graphql?api_key={fake.api_key}", json={"query": "{ myself { id } }"})
    assert legacy.json()["data"]["myself"]["id"] == fake.account_id
    assert gql(api, "{ myself { pods { id } } }", fake.read_only_key).status_code == 200
    reply = gql(
        api, CREATE.format(name="x", gpu="NVIDIA L40S", count=1, fields="id"), fake.read_only_key
    )
    assert reply.status_code == 200
    assert reply.json() == {
        "data": {"podFindAndDeployOnDemand": None},
        "errors": [{"message": "Unauthorized", "path": ["podFindAndDeployOnDemand"]}],
    }
    assert fake.pods() == []


def test_catalog_stock_and_prices(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    query = """query($f: GpuTypeFilter, $n: Int!) { gpuTypes(input: $f) {
      id displayName securePrice communityPrice maxGpuCount secureCloud communityCloud
      lowestPrice(input: {gpuCount: $n, secureCloud: true}) {
        stockStatus uninterruptablePrice minimumBidPrice availableGpuCounts } } }"""

    def offer(gpu: str, count: int) -> dict[str, Any]:
        reply = gql(api, query, None, f={"id": gpu}, n=count)
        (only,) = reply.json()["data"]["gpuTypes"]
        return only

    l40s = offer("NVIDIA L40S", 1)
    assert l40s["lowestPrice"]["stockStatus"] == "High"
    assert l40s["lowestPrice"]["uninterruptablePrice"] == l40s["securePrice"]
    assert offer("NVIDIA L40S", 16)["lowestPrice"]["stockStatus"] is None  # > maxGpuCount
    runpod_account.set_stock("NVIDIA L40S", "Low")
    assert offer("NVIDIA L40S", 1)["lowestPrice"]["stockStatus"] == "Low"
    assert offer("NVIDIA L40S", 4)["lowestPrice"]["stockStatus"] is None
    runpod_account.set_stock("NVIDIA L40S", 0)
    gone = offer("NVIDIA L40S", 1)["lowestPrice"]
    assert gone["stockStatus"] is None and gone["uninterruptablePrice"] is None
    assert gql(api, query, None, f={"id": "nope"}, n=1).json()["data"]["gpuTypes"] == []


def test_no_capacity_text_and_nothing_left_behind(
    api: httpx.Client, runpod_account: FakeRunpod
) -> None:
    runpod_account.set_stock("NVIDIA L40S", 0)
    reply = gql(
        api,
        CREATE.format(name="x", gpu="NVIDIA L40S", count=1, fields="id"),
        runpod_account.api_key,
    )
    body = reply.json()
    assert reply.status_code == 200 and body["data"] == {"podFindAndDeployOnDemand": None}
    assert body["errors"][0]["message"] == NO_CAPACITY
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert runpod_account.pods() == [] and runpod_account.ledger() == []


def test_pod_is_null_for_unknown(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    reply = gql(api, '{ pod(input: {podId: "zzzzzzzzzzzzzz"}) { id } }', runpod_account.api_key)
    assert reply.json() == {"data": {"pod": None}}


def test_boot_reveals_private_port_first_then_public(
    api: httpx.Client, runpod_account: FakeRunpod
) -> None:
    fake = runpod_account
    fake.set_boot_delay(30)
    created = create(api, fake)
    assert created["desiredStatus"] == "RUNNING" and created["runtime"] is None
    assert get_pod(api, fake, created["id"])["runtime"] is None  # type: ignore[index]
    fake.advance_time(31)
    ports = get_pod(api, fake, created["id"])["runtime"]["ports"]  # type: ignore[index]
    ssh = [p for p in ports if p["privatePort"] == 22]
    assert ssh[0]["isIpPublic"] is False and ssh[0]["ip"].startswith("10.")
    assert ssh[0]["publicPort"] == 22
    assert ssh[1] == {
        "ip": "127.0.0.1",
        "isIpPublic": True,
        "privatePort": 22,
        "publicPort": fake.world.ssh_port,
        "type": "tcp",
    }
    assert [p["type"] for p in ports if p["privatePort"] == 8888] == ["http"]


def test_stop_resume_terminate_and_stock(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    fake = runpod_account
    before = fake.stock("NVIDIA A100-SXM4-80GB")
    pod = create(api, fake, gpu="NVIDIA A100-SXM4-80GB", count=2)
    assert fake.stock("NVIDIA A100-SXM4-80GB") == before - 2
    stop = (
        'mutation { podStop(input: {podId: "%s"}) { desiredStatus runtime { uptimeInSeconds } } }'
    )
    assert gql(api, stop % pod["id"], fake.api_key).json()["data"]["podStop"] == {
        "desiredStatus": "EXITED",
        "runtime": None,
    }
    assert fake.stock("NVIDIA A100-SXM4-80GB") == before
    fake.set_stock("NVIDIA A100-SXM4-80GB", 1)
    resume = 'mutation { podResume(input: {podId: "%s", gpuCount: 2}) { desiredStatus } }'
    refused = gql(api, resume % pod["id"], fake.api_key).json()
    assert refused["errors"][0]["message"] == NOT_ENOUGH_GPUS
    fake.set_stock("NVIDIA A100-SXM4-80GB", 8)
    resumed = gql(api, resume % pod["id"], fake.api_key).json()["data"]["podResume"]
    assert resumed == {"desiredStatus": "RUNNING"}
    terminate = f'mutation {{ podTerminate(input: {{podId: "{pod["id"]}"}}) }}'
    assert gql(api, terminate, fake.api_key).json() == {"data": {"podTerminate": None}}
    again = gql(api, terminate, fake.api_key).json()
    assert again["errors"][0]["message"] == "pod not found to terminate"
    assert fake.stock("NVIDIA A100-SXM4-80GB") == 8 and get_pod(api, fake, pod["id"]) is None


def test_never_boot_and_pods_dying(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    fake = runpod_account
    fake.never_boot(True)
    stuck = create(api, fake, name="thinnka-stuck")
    fake.advance_time(3600)
    assert get_pod(api, fake, stuck["id"])["runtime"] is None  # type: ignore[index]
    fake.never_boot(False)
    exits, vanishes = create(api, fake, name="a"), create(api, fake, name="b")
    fake.kill_pod(exits["id"])
    fake.kill_pod(vanishes["id"], vanish=True)
    assert get_pod(api, fake, exits["id"]) == {**exits, "desiredStatus": "EXITED"}
    assert get_pod(api, fake, vanishes["id"]) is None
    by_id = {e.pod_id: e for e in fake.ledger()}
    assert by_id[vanishes["id"]].terminated_by == "runpod"
    assert by_id[stuck["id"]].cost == pytest.approx(0.86, rel=0.01)  # an hour of a stuck L40S


def test_faults_latency_and_ledger(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    fake = runpod_account
    catalog = "{ gpuTypes { id } }"
    fake.inject_faults(status=429, count=2, retry_after=1.5)
    first, second = gql(api, catalog, None), gql(api, catalog, None)
    assert [first.status_code, second.status_code] == [429, 429]
    assert first.headers["Retry-After"] == "1.5"
    assert gql(api, catalog, None).status_code == 200
    fake.inject_faults(status=500, match="podTerminate")
    assert gql(api, catalog, None).status_code == 200  # does not match
    assert (
        gql(api, 'mutation { podTerminate(input: {podId: "x"}) }', fake.api_key).status_code == 500
    )
    fake.inject_faults(drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        gql(api, catalog, None)
    fake.set_latency(0.2)
    started = time.monotonic()
    assert gql(api, catalog, None).status_code == 200
    assert time.monotonic() - started >= 0.2
    fake.set_latency(0)
    pod = create(api, fake)
    fake.advance_time(1800)
    (entry,) = fake.ledger()
    assert entry.pod_id == pod["id"] and not entry.terminated
    assert entry.seconds_alive >= 1800 and entry.cost == pytest.approx(0.43, rel=0.01)


def test_foreign_pods_and_accounts(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    fake = runpod_account
    jupyter = fake.add_foreign_pod("my-jupyter")
    other = fake.add_foreign_pod(
        "thinnka-a1b2", env={"THINNKA_OWNER": "someone-else"}, status="EXITED"
    )
    mine = create(api, fake)
    listed = gql(api, "{ myself { pods { id name desiredStatus env } } }", fake.api_key)
    pods = {p["id"]: p for p in listed.json()["data"]["myself"]["pods"]}
    assert set(pods) == {jupyter, other, mine["id"]}
    assert pods[other]["env"] == ["THINNKA_OWNER=someone-else"]
    assert pods[other]["desiredStatus"] == "EXITED"
    stranger = fake.add_account()
    assert gql(api, "{ myself { pods { id } } }", stranger.api_key).json() == {
        "data": {"myself": {"pods": []}}
    }


def test_parallel_creates_never_oversell(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    runpod_account.set_stock("NVIDIA H100 80GB HBM3", 5)
    codes: list[str] = []

    def attempt(i: int) -> None:  # httpx.Client is thread-safe; its pool opens connections
        query = CREATE.format(name=f"p{i}", gpu="NVIDIA H100 80GB HBM3", count=1, fields="id")
        body = gql(api, query, runpod_account.api_key).json()
        codes.append("ok" if body["data"]["podFindAndDeployOnDemand"] else "full")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == ["full"] * 7 + ["ok"] * 5


# ---- REST v2 ---------------------------------------------------------------------------------
def test_rest_v2_shares_state_with_graphql(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    fake = runpod_account
    auth = {"Authorization": f"Bearer {fake.api_key}"}
    body = {
        "name": "thinnka-v2",
        "image": "img",
        "gpu": {"id": "NVIDIA L40S", "count": 1},
        "cloud": "SECURE",
        "ports": ["22/tcp"],
        "env": {"THINNKA_OWNER": "me"},
    }
    created = api.post("/v2/pods", json=body, headers=auth)
    assert created.status_code == 201 and created.json()["ssh"]["direct"] is None
    v2_id = created.json()["id"]
    assert get_pod(api, fake, v2_id)["env"] == ["THINNKA_OWNER=me"]  # type: ignore[index]
    gql_id = create(api, fake)["id"]
    listed = api.get("/v2/pods", params={"name": "no-such-name"}, headers=auth)
    assert {p["id"] for p in listed.json()["pods"]} == {v2_id, gql_id}  # params ignored
    assert "RateLimit" in listed.headers
    fake.advance_time(5)  # past the default boot delay
    got = api.get(f"/v2/pods/{gql_id}", headers=auth).json()
    assert got["ssh"]["direct"] == {
        "host": "127.0.0.1",
        "port": fake.world.ssh_port,
        "username": "root",
        "command": got["ssh"]["direct"]["command"],
    }
    stop = api.post(f"/v2/pods/{v2_id}/action", json={"action": "stop"}, headers=auth)
    assert stop.status_code == 200 and stop.json()["status"] == "EXITED"
    again = api.post(f"/v2/pods/{v2_id}/action", json={"action": "stop"}, headers=auth)
    assert again.status_code == 409
    assert api.delete(f"/v2/pods/{gql_id}", headers=auth).status_code == 204
    assert get_pod(api, fake, gql_id) is None
    missing = api.delete(f"/v2/pods/{gql_id}", headers=auth)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"


def test_rest_v2_errors(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    auth = {"Authorization": f"Bearer {runpod_account.api_key}"}
    body = {"name": "x", "image": "i", "gpu": {"id": "NVIDIA L40S", "count": 1}}
    assert api.get("/v2/pods").status_code == 401
    strict = api.post("/v2/pods", json={**body, "gpuTypeIds": ["x"]}, headers=auth)
    assert strict.status_code == 422
    assert strict.json()["errors"] == ["$: additional properties 'gpuTypeIds' not allowed"]
    runpod_account.set_stock("NVIDIA L40S", 0)
    full = api.post("/v2/pods", json=body, headers=auth)
    assert full.status_code == 400
    assert full.json() == {"title": "Bad Request", "status": 400, "detail": NO_CAPACITY}
    read_only = {"Authorization": f"Bearer {runpod_account.read_only_key}"}
    assert api.post("/v2/pods", json=body, headers=read_only).status_code == 403


# ---- control surface and CLI -----------------------------------------------------------------
def test_http_controls(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    control = runpod_account.control_url
    assert api.post(f"{control}/stock", json={"gpu_type_id": "NVIDIA L40S", "stock": 0}).is_success
    assert runpod_account.stock("NVIDIA L40S") == 0
    foreign = api.post(f"{control}/foreign_pod", json={"name": "my-jupyter"}).json()["id"]
    assert api.post(f"{control}/faults", json={"status": 503, "count": 1}).is_success
    assert gql(api, "{ gpuTypes { id } }", None).status_code == 503
    assert api.post(f"{control}/kill", json={"pod_id": foreign, "vanish": True}).is_success
    (entry,) = api.get(f"{control}/ledger").json()["entries"]
    assert entry["pod_id"] == foreign and entry["terminated"] and entry["foreign"]
    assert api.post(f"{control}/kill", json={"pod_id": foreign}).status_code == 404
    assert api.post(f"{control}/reset").is_success and api.get(f"{control}/pods").json() == {
        "pods": []
    }
    assert api.get(f"{control}/info").json()["api_key"] == runpod_account.api_key


def test_start_is_fast_and_stop_cuts_connections() -> None:
    started = time.perf_counter()
    fake = FakeRunpod(ssh_port=2222).start()
    assert time.perf_counter() - started < 0.3
    with httpx.Client(base_url=fake.base_url, trust_env=False) as client:
        assert gql(client, "{ gpuTypes { id } }", None).status_code == 200
        fake.stop()
        with pytest.raises(httpx.TransportError):
            gql(client, "{ gpuTypes { id } }", None)


def test_spot_pods_and_malformed_requests(api: httpx.Client, runpod_account: FakeRunpod) -> None:
    spot = """mutation { podRentInterruptable(input: {bidPerGpu: 0.5, gpuTypeId: "NVIDIA L40S",
      gpuCount: 2, name: "s", imageName: "i"}) { podType costPerHr } }"""
    reply = gql(api, spot, runpod_account.api_key).json()
    assert reply == {
        "data": {"podRentInterruptable": {"podType": "INTERRUPTABLE", "costPerHr": 1.0}}
    }
    bad_variables = {"query": "{ gpuTypes { id } }", "variables": [1]}
    assert api.post("/graphql", json=bad_variables).status_code == 400
    assert api.post("/graphql", content=b"{not json").status_code == 400
    runpod_account.inject_faults(status=429, retry_after=2, match="/v2/")
    limited = api.get("/v2/pods", headers={"Authorization": f"Bearer {runpod_account.api_key}"})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert limited.headers["Content-Type"] == "application/problem+json"


def test_cli_prints_ready_and_json_then_dies_on_sigterm() -> None:
    argv = [sys.executable, "-m", "tests.world.runpod", "--port", "0", "--ssh-port", "2222"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline().split()
            info = json.loads(proc.stdout.readline())
            assert ready[0] == "READY" and info["base_url"] == f"http://127.0.0.1:{ready[1]}"
            assert info["graphql"] == info["base_url"] + "/graphql"
            with httpx.Client(trust_env=False) as client:
                auth = {"Authorization": f"Bearer {info['api_key']}"}
                reply = client.post(
                    info["graphql"], json={"query": "{ myself { id } }"}, headers=auth
                )
                assert reply.json()["data"]["myself"]["id"]
                assert client.get(info["control"] + "/info").json()["ssh_port"] == 2222
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
