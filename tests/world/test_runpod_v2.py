"""Faithfulness of the emulator's REST v2 surface to the real API (docs/runpod.md), over raw
HTTP so that thinnka's own client cannot hide a mistake in either."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.world._runpod_records import NO_CAPACITY
from tests.world.runpod import FakeRunpod

pytestmark = pytest.mark.timeout(60)

BODY: dict[str, Any] = {
    "name": "thinnka-v2",
    "image": "runpod/pytorch:test",
    "gpu": {"id": "NVIDIA L40S", "count": 1},
    "ports": ["22/tcp"],
    "startSsh": True,
}


def _create(v2: httpx.Client, **changes: Any) -> dict[str, Any]:
    created = v2.post("/pods", json={**BODY, **changes})
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**BODY, "bogus": 1}, "$: additional properties 'bogus' not allowed"),
        (
            {**BODY, "gpu": {"id": "NVIDIA L40S", "vcpuCount": 8}},
            "$.gpu: additional properties 'vcpuCount' not allowed",
        ),
        (
            {**BODY, "gpu": {"id": "NVIDIA L40S", "count": "1"}},
            "$.gpu.count: value must be an integer",
        ),
        ({**BODY, "cloud": "ALL"}, "$.cloud: value must be one of 'SECURE', 'COMMUNITY'"),
        ({**BODY, "ports": "22/tcp"}, "$.ports: value must be an array"),
        ({**BODY, "env": [{"key": "A", "value": "b"}]}, "$.env: value must be an object"),
        (
            {**BODY, "supportPublicIp": True},
            "$: additional properties 'supportPublicIp' not allowed",
        ),
        (
            {**BODY, "mounts": {"persistent": {"size": 5, "path": "/w"}}},
            "$.mounts.persistent.size: value must be >= 10",
        ),
        ({k: v for k, v in BODY.items() if k != "name"}, "$: missing property 'name'"),
        ({k: v for k, v in BODY.items() if k != "image"}, "$: missing property 'image'"),
    ],
)
def test_closed_bodies_are_422_naming_the_field(
    v2: httpx.Client, runpod_account: FakeRunpod, body: dict[str, Any], error: str
) -> None:
    answer = v2.post("/pods", json=body)
    assert (
        answer.status_code == 422 and answer.headers["Content-Type"] == "application/problem+json"
    )
    assert answer.json()["title"] == "Unprocessable Entity" and error in answer.json()["errors"]
    assert runpod_account.pods() == []


def test_cross_field_rules_capacity_402_and_403(
    v2: httpx.Client, runpod_account: FakeRunpod
) -> None:
    both = v2.post("/pods", json={**BODY, "cpu": {"id": "cpu3c", "vcpuCount": 2}})
    assert both.status_code == 400
    cuda = {**BODY["gpu"], "allowedCudaVersions": ["12.4"], "minCudaVersion": "12.1"}
    assert v2.post("/pods", json={**BODY, "gpu": cuda}).status_code == 400
    for change in (
        {"gpu": {**BODY["gpu"], "allowedCudaVersions": ["11.8"]}},
        {"dataCenterIds": ["XX-NOPE-1"]},
        {"gpu": {**BODY["gpu"], "minRamPerGpu": 4096}},
        {"cloud": "COMMUNITY", "gpu": {"id": "NVIDIA H200"}},  # not offered there
    ):
        full = v2.post("/pods", json={**BODY, **change})
        assert full.status_code == 400 and full.json()["detail"] == NO_CAPACITY, change
    runpod_account.set_balance_exhausted()
    assert v2.post("/pods", json=BODY).status_code == 402
    runpod_account.set_balance_exhausted(False)
    runpod_account.forbid_pool("NVIDIA L40S")
    assert v2.post("/pods", json=BODY).json()["detail"] == "cannot access the requested pool"
    assert runpod_account.pods() == []


def test_status_progression_and_ssh_endpoints(v2: httpx.Client, runpod_account: FakeRunpod) -> None:
    runpod_account.set_boot_delay(10)
    pod = _create(v2)
    assert pod["status"] == "PROVISIONING" and pod["runtime"] is None
    assert pod["ssh"] == {"proxy": None, "direct": None} and pod["template"] is None
    assert "startSsh" not in pod and pod["gpu"].keys() == {"id", "count", "vcpuCount", "memory"}
    runpod_account.advance_time(6)
    starting = v2.get(f"/pods/{pod['id']}").json()
    assert starting["status"] == "STARTING" and starting["ssh"]["proxy"] is not None
    assert starting["ssh"]["direct"] is None and starting["actions"] == ["stop", "terminate"]
    runpod_account.advance_time(5)
    running = v2.get(f"/pods/{pod['id']}").json()
    assert running["status"] == "RUNNING" and running["ssh"]["direct"]["username"] == "root"
    first = running["runtime"]["ports"][0]
    assert first["private"] == 22 and first["public"] is None  # a private 22 entry comes first
    no_ssh_port = _create(v2, name="no-22", ports=["8888/http"])
    runpod_account.advance_time(11)
    assert v2.get(f"/pods/{no_ssh_port['id']}").json()["ssh"]["direct"] is None
    stopped = v2.post(f"/pods/{pod['id']}/action", json={"action": "stop"}).json()
    assert stopped["status"] == "EXITED" and stopped["cost"] == 0.0
    assert stopped["runtime"] is None and stopped["ssh"]["direct"] is None
    bad = v2.post(f"/pods/{pod['id']}/action", json={"action": "reset"})
    assert bad.status_code == 422
    assert v2.post(f"/pods/{pod['id']}/action", json={"action": "restart"}).status_code == 409
    assert v2.post(f"/pods/{pod['id']}/action", json={"action": "start"}).json()["status"] == (
        "PROVISIONING"
    )
    assert v2.delete(f"/pods/{pod['id']}").status_code == 204
    assert v2.get(f"/pods/{pod['id']}").status_code == 404
    assert v2.delete(f"/pods/{pod['id']}").status_code == 404


def test_catalog_rules_and_shapes(v2: httpx.Client, runpod_account: FakeRunpod) -> None:
    plain = v2.get("/catalog/gpus").json()["gpus"]
    assert all("availability" not in g for g in plain) and "unknown" not in {g["id"] for g in plain}
    assert v2.get("/catalog/gpus", params={"include": "AVAILABILITY"}).status_code == 400
    assert v2.get("/catalog/gpus", params={"count": 2}).status_code == 400
    runpod_account.set_stock("NVIDIA L40S", 0)
    params = {"include": "AVAILABILITY", "product": "POD", "count": 1}
    gpus = {g["id"]: g for g in v2.get("/catalog/gpus", params=params).json()["gpus"]}
    assert (
        gpus["NVIDIA L40S"]["availability"] == "NONE" and "dataCenters" not in gpus["NVIDIA L40S"]
    )
    assert gpus["NVIDIA H200"]["availability"] == "HIGH" and gpus["NVIDIA H200"]["dataCenters"]
    community = {**params, "cloud": "COMMUNITY"}
    h200 = v2.get("/catalog/gpus/NVIDIA%20H200", params=community).json()
    assert h200["availability"] == "NONE" and h200["price"] == {"secure": 3.59, "community": None}
    assert v2.get("/catalog/gpus/NVIDIA%20B999").status_code == 404


def test_keys_rate_limits_and_the_request_log(runpod_account: FakeRunpod, v2: httpx.Client) -> None:
    anonymous = httpx.get(f"{runpod_account.rest_url}/pods", trust_env=False)
    assert anonymous.status_code == 401 and "RateLimit" not in anonymous.headers
    assert anonymous.json()["detail"] == "missing bearer token"
    runpod_account.set_rate_limit(("minute", 2, 60.0))
    first = v2.get("/pods")
    assert first.headers["RateLimit"] == '"minute";r=1;t=60'
    assert first.headers["RateLimit-Policy"] == '"minute";q=2;w=60'
    assert v2.get("/pods").status_code == 200
    limited = v2.get("/pods")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"
    assert limited.json()["detail"] == "rate limit exceeded for the minute window"
    log = [(r.method, r.path, r.surface, r.key, r.status) for r in runpod_account.requests()]
    assert log == [
        ("GET", "/v2/pods", "v2", "none", 401),
        ("GET", "/v2/pods", "v2", "account", 200),
        ("GET", "/v2/pods", "v2", "account", 200),
        ("GET", "/v2/pods", "v2", "account", 429),
    ]


def test_a_fault_after_routing_acts_then_loses_the_answer(
    v2: httpx.Client, runpod_account: FakeRunpod
) -> None:
    runpod_account.inject_faults(drop=True, after=True, match="POST /v2/pods ")
    with pytest.raises(httpx.TransportError):
        v2.post("/pods", json=BODY)
    assert len(runpod_account.pods()) == 1  # created, though nobody heard the answer
    pod_id = runpod_account.pods()[0].id
    runpod_account.inject_faults(status=404, match="DELETE /v2/pods")  # a 404 that lies
    assert v2.delete(f"/pods/{pod_id}").status_code == 404
    assert runpod_account.pod(pod_id) is not None


def test_billing_records_per_pod_per_bucket(v2: httpx.Client, runpod_account: FakeRunpod) -> None:
    pod = _create(v2)
    runpod_account.advance_time(2 * 3600)
    assert v2.delete(f"/pods/{pod['id']}").status_code == 204
    data = v2.get("/billing/pods", params={"podId": pod["id"], "bucketSize": "hour"}).json()
    records = data["records"]
    assert 2 <= len(records) <= 3 and {r["podId"] for r in records} == {pod["id"]}
    assert all(r["startTime"].endswith(":00:00Z") for r in records)  # snapped to the hour
    total = sum(r["totalAmount"] for r in records)
    assert total == pytest.approx(2 * 0.86, rel=0.01)
    assert data["metadata"]["totals"]["totalAmount"] == pytest.approx(total)
    assert v2.get("/billing/pods", params={"bucketSize": "fortnight"}).status_code == 422


def test_v2_controls_over_http(v2: httpx.Client, runpod_account: FakeRunpod) -> None:
    control = runpod_account.control_url
    closed = {"gpu_type_id": "NVIDIA L40S", "cloud": "SECURE", "available": False}
    assert httpx.post(f"{control}/cloud_capacity", json=closed, trust_env=False).is_success
    assert v2.post("/pods", json=BODY).json()["detail"] == NO_CAPACITY
    windows = {"windows": [["minute", 1, 60]]}
    assert httpx.post(f"{control}/rate_limit", json=windows, trust_env=False).is_success
    assert v2.get("/pods").status_code == 200 and v2.get("/pods").status_code == 429
    logged = httpx.get(f"{control}/requests", trust_env=False).json()["requests"]
    assert [r["status"] for r in logged] == [400, 200, 429]
