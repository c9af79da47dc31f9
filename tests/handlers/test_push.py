"""The push check after training: only this run's final push counts, and a flaky Hub is
asked longer than one client call does.

Its answer decides a whole training (no final push: the run failed, the pod is
terminated), so a Hub that fails a few times in a row must not turn a pushed model into
a failed run, and a checkpoint pushed on the way, a repo the trainer created, or another
run's push must not pass for it. Against the Hub emulator with thinnka's real Hub client.
"""

from __future__ import annotations

import datetime as dt
import json
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
RUN_ID = "r-pushed"


def _ctx(hub: FakeHub, repo_id: str, *, seconds: float = 30.0) -> SimpleNamespace:
    client = HubClient(endpoint=hub.endpoint, token=hub.tokens.write, backoff_max=0.01)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    run = SimpleNamespace(id=RUN_ID, hub_model_id=repo_id, remote=RemoteFacts(hub_baseline=before))
    return SimpleNamespace(
        run=run,
        services=SimpleNamespace(hub=client),
        remaining=lambda: seconds,
    )


def _marker(run_id: str) -> bytes:
    return json.dumps({"run_id": run_id, "step": 3}).encode()


def _statuses(hub: FakeHub, repo_id: str) -> list[int]:
    return [r.status for r in hub.requests() if r.path.startswith(COMMITS.format(repo_id))]


def test_the_push_check_outlasts_more_failures_than_one_client_call_retries(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.reset()
    monkeypatch.setattr(push, "_VERIFY_PAUSE_S", 0.05)
    repo_id = fake_hub.models.chat
    fake_hub.upload(repo_id, {"model.safetensors": b"pushed", push.RUN_MARKER: _marker(RUN_ID)})
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


def test_only_this_runs_final_push_marker_is_a_push(fake_hub: FakeHub) -> None:
    """Every commit before the marker may be a checkpoint (transformers pushes at every
    save) or the repo's creation; another run's marker is its push, not this one's."""
    fake_hub.reset()
    repo_id = f"{fake_hub.user}/target"
    ctx = _ctx(fake_hub, repo_id)
    ctx.run.remote = RemoteFacts(hub_baseline=None)  # the repo did not exist before training
    assert push.hub_push(ctx).latest is None  # type: ignore[arg-type]

    fake_hub.add_repo(repo_id)  # the trainer's create_repo: the Hub's .gitattributes commit
    created = push.hub_push(ctx)  # type: ignore[arg-type]
    assert created.latest is not None and not created.final
    assert "was created" in created.describe() and "nothing was pushed" in created.describe()
    assert push.hub_has_push(ctx) is None  # type: ignore[arg-type]

    checkpoint_files = {"model.safetensors": b"half"}
    fake_hub.upload(repo_id, checkpoint_files, summary="Training in progress, step 40")
    checkpoint = push.hub_push(ctx)  # type: ignore[arg-type]
    assert not checkpoint.final
    assert "intermediate checkpoint at step 40" in checkpoint.describe()

    fake_hub.upload(repo_id, {push.RUN_MARKER: _marker("r-another")}, summary="thinnka: r-another")
    assert not push.hub_push(ctx).final  # type: ignore[arg-type]

    fake_hub.upload(repo_id, {"model.safetensors": b"final"}, summary="End of training")
    unrecorded = push.hub_push(ctx)  # type: ignore[arg-type]  # the marker's upload failed
    assert not unrecorded.final and "never recorded it" in unrecorded.describe()
    fake_hub.upload(repo_id, {push.RUN_MARKER: b"not json"}, summary="broken")
    assert not push.hub_push(ctx).final  # type: ignore[arg-type]
    fake_hub.upload(repo_id, {push.RUN_MARKER: _marker(RUN_ID)}, summary="thinnka: final")
    final = push.hub_push(ctx)  # type: ignore[arg-type]
    assert final.final and final.latest is not None
    assert push.hub_has_push(ctx) == final.latest.created_at  # type: ignore[arg-type]
    fake_hub.upload(repo_id, {"README.md": b"# edited"}, summary="Update README.md")
    assert push.hub_push(ctx).final  # type: ignore[arg-type]  # later commits keep the file
