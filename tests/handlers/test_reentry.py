"""Re-entry holes: a crash between a step's work and its transition must not lose facts.

The real handlers run against the Runpod emulator and a real sshd; the crash is a
`BaseException` raised right after the handler returns, before the runner persists the
transition (what a `kill -9` at that line leaves behind). Time is moved for the
"cleanup hours later" case by patching the terminate step's clock; nothing else is faked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.world.runpod import FakeRunpod
from tests.world.sshd import FakeSshd
from thinnka.clients.runpod import PodSpec
from thinnka.clients.runpod.graphql import GraphQLRunpod
from thinnka.handlers import default_handlers
from thinnka.handlers.base import Handler
from thinnka.machine import FAIL_TRIGGER, RunState, next_transition
from thinnka.options import RunOptions
from thinnka.runner import Runner
from thinnka.services import LiveServices, Services
from thinnka.settings import load_settings
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord, Store, open_store
from thinnka.store.models import utcnow

pytestmark = pytest.mark.timeout(120)
OWNER = "test-host:1:reentry"
GPU_ID = "NVIDIA GeForce RTX 4090"  # the emulator's display name for it is "RTX 4090"


class Crash(BaseException):
    """The process dying between a handler's return and its transition."""


class CrashAfter:
    trigger: ClassVar[str] = ""

    def __init__(self, inner: Handler) -> None:
        self.inner = inner
        self.trigger = inner.trigger  # type: ignore[misc]

    def timeout_s(self, run: RunRecord) -> float:
        return self.inner.timeout_s(run)

    def run(self, ctx: StepContext) -> StepResult:
        self.inner.run(ctx)
        raise Crash


class Quiet:
    def event(self, name: str, message: str, **fields: Any) -> None:
        return

    def line(self, stage: str, text: str) -> None:
        return


@dataclass
class Rig:
    store: Store
    services: Services
    runpod: FakeRunpod
    sshd: FakeSshd

    def runner(self, **replace: Handler) -> Runner:
        handlers = {**default_handlers(), **replace}
        settings = self.services.settings
        return Runner(
            self.store, settings, handlers=handlers, output=Quiet(), services=self.services,
            owner=OWNER,
        )  # fmt: skip

    def run_at(self, state: RunState, **facts: Any) -> RunRecord:
        """A run recorded in ``state`` with ``facts``, as earlier steps would have left it."""
        store = self.store
        run = store.create_run(RunOptions(repo_id="tiny/model"), owner=OWNER, lease_seconds=300)
        current = RunState.created
        while current is not state:
            transition = next_transition(current)
            assert transition is not None
            if state is RunState.failed and current is RunState.estimated:
                store.transition(run.id, owner=OWNER, source=current, dest=RunState.failed,
                                 trigger=FAIL_TRIGGER)  # fmt: skip
                break
            store.transition(run.id, owner=OWNER, source=current, dest=transition.dest,
                             trigger=transition.trigger)  # fmt: skip
            current = transition.dest
        store.release_lease(run.id, OWNER)
        return self.record(run, **facts)

    def record(self, run: RunRecord, **facts: Any) -> RunRecord:
        self.store.acquire_lease(run.id, OWNER, seconds=60)
        self.store.record(run.id, owner=OWNER, updates=facts)
        self.store.release_lease(run.id, OWNER)
        return self.store.get(run.id)

    def create_pod(self, run: RunRecord) -> str:
        api = self.services.runpod
        spec = PodSpec(
            name=f"thinnka-test-{run.id}", image="img", gpu_type_id=GPU_ID, gpu_count=1,
            cloud_type="ALL", volume_gb=10, container_disk_gb=10, min_vcpu=1, min_memory_gb=1,
            env={"THINNKA_RUN_ID": run.id, "THINNKA_OWNER": self.services.owner,
                 "PUBLIC_KEY": self.sshd.public_key},
        )  # fmt: skip
        return api.create_pod(spec).id


@pytest.fixture
def rig(tmp_path: Path, runpod_account: FakeRunpod, sshd_pod: FakeSshd) -> Iterator[Rig]:
    environ = {
        "THINNKA_STATE_DIR": str(tmp_path / "state"),
        "RUNPOD_API_KEY": runpod_account.api_key,
        "RUNPOD_API_BASE_URL": runpod_account.base_url,
        "SSH_PUBLIC_KEY": sshd_pod.public_key,
        "SSH_PRIVATE_KEY_PATH": str(sshd_pod.private_key_path),
        "THINNKA_SSH_USER": sshd_pod.user,
    }
    settings = load_settings(environ=environ, cwd=tmp_path)
    store = open_store(settings)
    services = LiveServices(settings, store)
    services.__dict__["runpod"] = GraphQLRunpod(
        runpod_account.base_url, runpod_account.api_key, backoff_max=0.05
    )
    yield Rig(store, services, runpod_account, sshd_pod)


def test_the_host_key_is_recorded_before_the_connect_transition(rig: Rig) -> None:
    run = rig.run_at(RunState.provisioned, pod_name="p", cost_per_hr=0.69)
    rig.record(run, pod_id=rig.create_pod(run))
    connect = default_handlers()["connect"]
    with pytest.raises(Crash):
        rig.runner(connect=CrashAfter(connect)).drive(run.id)
    after = rig.store.get(run.id)
    assert after.state is RunState.provisioned  # the transition never happened
    assert after.host_key is not None
    assert after.host_key.split()[:2] == rig.sshd.host_public_key.split()[:2]


def test_a_cleanup_hours_after_a_crash_bills_the_pods_time_not_the_downtime(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rate = 0.69
    started = utcnow() - dt.timedelta(minutes=10)
    run = rig.run_at(RunState.failed, pod_name="p", cost_per_hr=rate, pod_started_at=started)
    pod_id = rig.create_pod(run)
    rig.record(run, pod_id=pod_id)

    with pytest.raises(Crash):  # terminated and confirmed, then the process died
        rig.runner(cleanup=CrashAfter(default_handlers()["cleanup"])).drive(run.id)
    assert rig.runpod.pod(pod_id) is None or rig.runpod.pod(pod_id).desired_status == "TERMINATED"
    first = rig.store.get(run.id)
    assert first.state is RunState.failed  # the cleanup transition never happened

    later = utcnow() + dt.timedelta(hours=3)  # `thinnka recover` runs three hours later
    monkeypatch.setattr("thinnka.handlers.terminate.utcnow", lambda: later)
    done = rig.runner().drive(run.id)
    assert done.state is RunState.terminated
    # The pod ran seconds (its uptime from the API), not 10 minutes, and certainly not 3 hours.
    assert 0 <= done.cost_usd < rate * 60 / 3600, done.cost_usd


def test_an_adopted_pod_records_the_gpu_type_id_like_a_created_one(rig: Rig) -> None:
    run = rig.run_at(RunState.estimated, pod_name="p")
    pod_id = rig.create_pod(run)  # "the create succeeded, the answer was lost"
    rig.runner().drive(run.id, stop_at=RunState.provisioned)
    adopted = rig.store.get(run.id)
    assert adopted.state is RunState.provisioned and adopted.pod_id == pod_id
    assert adopted.gpu_type == GPU_ID  # before: the display name "RTX 4090"


def test_cleanup_keeps_a_pod_holding_an_unpushed_model_until_its_hold_or_a_cancel(
    rig: Rig,
) -> None:
    """A push_failed run whose model is only on its pod: cleanup (the run's process,
    `recover`, `resume`) leaves the pod during the push hold, and says so; `cancel` ends it."""
    from thinnka.store.records import RemoteFacts

    run = rig.run_at(RunState.failed, pod_name="p", cost_per_hr=0.69)
    pod_id = rig.create_pod(run)
    hold = RemoteFacts(push_hold_until=utcnow() + dt.timedelta(hours=1))
    rig.record(run, pod_id=pod_id, remote=hold)
    kept = rig.runner().drive(run.id)
    assert kept.state is RunState.failed
    rig.runner().drive(run.id)  # a `recover` pass later in the hold: still kept, said once
    assert rig.runpod.pod(pod_id) is not None
    events = [e for e in rig.store.events(run.id) if e.kind == "pod_kept"]
    assert len(events) == 1 and "thinnka cancel" in events[0].message
    assert not [e for e in rig.store.events(run.id) if e.kind == "cleanup_error"]

    rig.store.request_cancel(run.id)
    done = rig.runner().drive(run.id)
    assert done.state is RunState.terminated
    pod = rig.runpod.pod(pod_id)
    assert pod is None or pod.desired_status == "TERMINATED"
