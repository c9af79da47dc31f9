"""The emulators' seeded random faults, over raw HTTP (no client retries to hide them).

``random_faults(rate, seed, kinds)`` makes a fraction of API requests fail with 429 (with
``Retry-After``), 500 or a dropped connection, on Runpod's REST v2 and GraphQL surfaces and
on the Hub, deterministically from the seed, and never on the ``/_control`` endpoints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from tests.world.hub import FakeHub
from tests.world.runpod import FakeRunpod

pytestmark = pytest.mark.timeout(60)

_N = 120
_QUERY = {"query": "query Pods { myself { pods { id } } }"}


def _outcome(send: Callable[[], httpx.Response]) -> str:
    try:
        response = send()
    except httpx.TransportError:
        return "drop"
    if response.status_code == 429:
        assert response.headers["Retry-After"] == "0.2"
    return str(response.status_code)


def _runpod_outcomes(fake: FakeRunpod, surface: str) -> list[str]:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(base_url=fake.base_url, headers=headers, trust_env=False) as client:
        if surface == "rest":
            return [_outcome(lambda: client.get("/v2/pods")) for _ in range(_N)]
        return [_outcome(lambda: client.post("/graphql", json=_QUERY)) for _ in range(_N)]


@pytest.mark.parametrize("surface", ["rest", "graphql"])
def test_runpod_random_faults_hit_a_seeded_fraction_and_count_them(
    runpod_account: FakeRunpod, surface: str
) -> None:
    runpod_account.random_faults(rate=0.25, seed=7)
    first = _runpod_outcomes(runpod_account, surface)
    seen = Counter(first)
    assert 0.1 * _N < _N - seen["200"] < 0.4 * _N, seen
    assert {"429", "500", "drop"} <= set(seen), seen  # every kind, within 120 requests
    injected = runpod_account.injected_faults()
    assert injected["total"] == _N - seen["200"]
    # A lost answer (500 or drop after routing) is a fault of a request that was carried out.
    assert 0 < injected["after"] < injected["500"] + injected["drop"]
    assert {k: injected[k] for k in ("429", "500", "drop")} == {
        k: seen[k] for k in ("429", "500", "drop")
    }
    with httpx.Client(trust_env=False) as control:  # the emulator's own controls: never
        for _ in range(40):
            assert control.get(f"{runpod_account.control_url}/pods").status_code == 200
    runpod_account.random_faults(rate=0.25, seed=7)  # the same seed: the same requests fail
    assert _runpod_outcomes(runpod_account, surface) == first
    runpod_account.random_faults(rate=0.25, seed=8)
    assert _runpod_outcomes(runpod_account, surface) != first
    runpod_account.clear_faults()
    assert set(_runpod_outcomes(runpod_account, surface)) == {"200"}


def test_runpod_a_lost_answer_is_of_a_create_that_happened(runpod_account: FakeRunpod) -> None:
    runpod_account.random_faults(rate=1.0, seed=1, kinds=["drop"], lost_answers=1.0)
    body = {"name": "lost", "image": "runpod/pytorch:test", "gpu": {"id": "NVIDIA L40S"},
            "ports": ["22/tcp"], "startSsh": True}  # fmt: skip
    headers = {"Authorization": f"Bearer {runpod_account.api_key}"}
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{runpod_account.rest_url}/pods", json=body, headers=headers, trust_env=False)
    assert [entry.name for entry in runpod_account.ledger()] == ["lost"]


def test_runpod_random_faults_over_the_control_endpoint(runpod_account: FakeRunpod) -> None:
    with httpx.Client(base_url=runpod_account.control_url, trust_env=False) as control:
        switched = control.post("/random_faults", json={"rate": 1.0, "seed": 3, "kinds": ["500"]})
        assert switched.status_code == 200, switched.text
        headers = {"Authorization": f"Bearer {runpod_account.api_key}"}
        assert httpx.get(f"{runpod_account.rest_url}/pods", headers=headers).status_code == 500
        assert control.get("/injected_faults").json()["500"] == 1
        assert control.post("/random_faults", json={"rate": 2, "seed": 1}).status_code == 400


def _hub_outcomes(hub: FakeHub, token: str, agent: str = "test") -> list[str]:
    headers = {"Authorization": f"Bearer {token}", "User-Agent": agent}
    with httpx.Client(base_url=hub.endpoint, headers=headers, trust_env=False) as client:
        return [_outcome(lambda: client.get("/api/whoami-v2")) for _ in range(_N)]


def test_hub_random_faults_hit_a_seeded_fraction_only_of_the_named_agent(
    fake_hub: FakeHub,
) -> None:
    fake_hub.reset()
    token = fake_hub.tokens.write
    fake_hub.random_faults(rate=0.25, seed=7, agent="thinnka/")
    assert set(_hub_outcomes(fake_hub, token, agent="huggingface_hub/1.0")) == {"200"}
    first = _hub_outcomes(fake_hub, token, agent="thinnka/1.0; hf_hub/1.0")
    seen = Counter(first)
    assert 0.1 * _N < _N - seen["200"] < 0.4 * _N and {"429", "500", "drop"} <= set(seen), seen
    assert fake_hub.injected_faults()["total"] == _N - seen["200"]
    with httpx.Client(trust_env=False) as control:
        for _ in range(40):
            assert control.get(f"{fake_hub.control}/health").status_code == 200
        fake_hub.random_faults(rate=0.25, seed=7, agent="thinnka/")
        assert _hub_outcomes(fake_hub, token, agent="thinnka/1.0") == first
        assert control.get(f"{fake_hub.control}/injected_faults").json()["total"] > 0
        assert control.delete(f"{fake_hub.control}/faults").status_code == 200
    assert set(_hub_outcomes(fake_hub, token)) == {"200"}
    fake_hub.reset()
