"""The push check after training asks a flaky Hub longer than one client call does.

Its answer decides a whole training (no new commit: the run failed, the pod is
terminated), so a Hub that fails a few times in a row must not turn a pushed model into
a failed run. Against the Hub emulator with thinnka's real Hub client.
"""

from __future__ import annotations

import datetime as dt
import time
from types import SimpleNamespace

import pytest

from tests.world.hub import FakeHub
from thinnka.clients.hub import HubClient
from thinnka.errors import AuthError, TransientError
from thinnka.handlers import push
from thinnka.store.records import RemoteFacts

pytestmark = pytest.mark.timeout(60)

COMMITS = "/api/models/{}/commits/"


def _ctx(hub: FakeHub, repo_id: str, *, seconds: float = 30.0) -> SimpleNamespace:
    client = HubClient(endpoint=hub.endpoint, token=hub.tokens.write, backoff_max=0.01)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    run = SimpleNamespace(hub_model_id=repo_id, remote=RemoteFacts(hub_baseline=before))
    return SimpleNamespace(
        run=run,
        services=SimpleNamespace(hub=client),
        remaining=lambda: seconds,
    )


def _statuses(hub: FakeHub, repo_id: str) -> list[int]:
    return [r.status for r in hub.requests() if r.path.startswith(COMMITS.format(repo_id))]


def test_the_push_check_outlasts_more_failures_than_one_client_call_retries(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.reset()
    monkeypatch.setattr(push, "_VERIFY_PAUSE_S", 0.05)
    repo_id = fake_hub.models.chat
    fake_hub.upload(repo_id, {"model.safetensors": b"pushed"})
    fake_hub.inject_fault(COMMITS.format(repo_id), 500, times=4)  # the client tries 3 times
    fake_hub.inject_fault(COMMITS.format(repo_id), 0, action="drop", times=1)
    latest = push.hub_has_push(_ctx(fake_hub, repo_id))  # type: ignore[arg-type]
    assert latest is not None
    assert _statuses(fake_hub, repo_id) == [500, 500, 500, 500, 0, 200]


def test_the_push_check_is_bounded_and_never_retries_a_refused_token(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.reset()
    monkeypatch.setattr(push, "_VERIFY_PAUSE_S", 0.05)
    repo_id = fake_hub.models.chat
    fake_hub.inject_fault(COMMITS.format(repo_id), 503, times=1000)
    started = time.monotonic()
    with pytest.raises(TransientError):
        push.hub_has_push(_ctx(fake_hub, repo_id, seconds=1.0))  # type: ignore[arg-type]
    assert time.monotonic() - started < 10
    fake_hub.reset()
    fake_hub.inject_fault(COMMITS.format(repo_id), 401, times=5)
    with pytest.raises(AuthError):
        push.hub_has_push(_ctx(fake_hub, repo_id))  # type: ignore[arg-type]
    assert _statuses(fake_hub, repo_id) == [401]
    fake_hub.reset()
