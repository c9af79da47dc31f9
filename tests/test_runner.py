"""The runner's contract, with stand-in handlers (the real ones run end to end elsewhere).

Stand-ins are legitimate here: the runner's job is ordering, persistence,
failure handling and leases, and these tests drive exactly that against a
real SQLite file and a real PostgreSQL server (``db_backend``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from thinnka.errors import Cancelled, LeaseHeld, PreflightError, RemoteError, StepTimeout
from thinnka.machine import HANDLER_TRIGGERS, Outcome, RunState
from thinnka.options import RunOptions
from thinnka.runner import Runner
from thinnka.settings import load_settings
from thinnka.step import StepContext, StepResult
from thinnka.store import Store, open_store

pytestmark = pytest.mark.usefixtures("db_backend")  # every test on SQLite and PostgreSQL


@dataclass
class Recorder:
    events: list[tuple[str, str]] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)

    def event(self, name: str, message: str, **fields: Any) -> None:
        self.events.append((name, message))

    def line(self, stage: str, text: str) -> None:
        self.lines.append((stage, text))


class Step:
    """A handler that records its calls and can be told to fail."""

    trigger: ClassVar[str] = ""

    def __init__(self, trigger: str, calls: list[str], fail: BaseException | None = None) -> None:
        self.trigger = trigger  # type: ignore[misc]
        self.calls = calls
        self.fail = fail

    def timeout_s(self, run: Any) -> float:
        return 10.0

    def run(self, ctx: StepContext) -> StepResult:
        self.calls.append(self.trigger)
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        updates = {"pod_id": "pod-1"} if self.trigger == "provision" else {}
        return StepResult(message=f"{self.trigger} done", updates=updates)


World = tuple[Store, Runner, list[str], Recorder]


def _world(tmp_path: Path, failures: dict[str, BaseException] | None = None) -> World:
    settings = load_settings(environ={"THINNKA_STATE_DIR": str(tmp_path)}, cwd=tmp_path)
    store = open_store(settings)
    calls: list[str] = []
    handlers = {t: Step(t, calls, (failures or {}).get(t)) for t in HANDLER_TRIGGERS}
    output = Recorder()
    runner = Runner(store, settings, handlers=handlers, output=output, owner="test-owner")
    return store, runner, calls, output


def test_happy_path_walks_every_transition_in_order(tmp_path: Path) -> None:
    store, runner, calls, _ = _world(tmp_path)
    run = runner.create(RunOptions())
    done = runner.drive(run.id)
    assert done.state is RunState.terminated and done.outcome is Outcome.succeeded
    assert calls == ["check_gate", "estimate", "provision", "connect", "install", "train",
                     "push", "terminate"]  # fmt: skip
    kinds = [e.kind for e in store.events(run.id)]
    assert kinds == ["created", *calls]
    assert done.pod_id == "pod-1" and done.lease_owner is None


def test_a_failing_step_records_the_error_then_cleans_up(tmp_path: Path) -> None:
    error = RemoteError("boom", reason="setup_failed")
    store, runner, calls, output = _world(tmp_path, {"install": error})
    run = runner.create(RunOptions())
    done = runner.drive(run.id)
    assert done.state is RunState.terminated and done.outcome is Outcome.failed
    assert (done.error_message, done.error_reason) == ("boom", "setup_failed")
    assert calls[-2:] == ["install", "cleanup"]
    transitions = [(e.from_state, e.to_state) for e in store.events(run.id)][-2:]
    assert transitions == [("connected", "failed"), ("failed", "terminated")]
    assert ("error", "boom") in output.events


def test_a_preflight_failure_never_reaches_provision(tmp_path: Path) -> None:
    _, runner, calls, _ = _world(tmp_path, {"check_gate": PreflightError("gated", reason="gated")})
    done = runner.drive(runner.create(RunOptions()).id)
    assert calls == ["check_gate", "cleanup"]
    # The specific code (gated) belongs to the failure code a run stores.
    assert done.error_reason == "precheck" and done.outcome is Outcome.failed


def test_cancelled_is_decided_by_the_exception_type_not_its_reason(tmp_path: Path) -> None:
    stop = Cancelled("Stopped.", reason="max_cost")
    _, runner, _, _ = _world(tmp_path, {"train": stop})
    done = runner.drive(runner.create(RunOptions()).id)
    assert done.outcome is Outcome.cancelled and done.error_reason == "cancelled"


@pytest.mark.parametrize(
    ("trigger", "expected"), [("connect", "ssh_timeout"), ("push", "max_duration")]
)
def test_a_step_deadline_fails_with_what_that_step_waited_for(
    tmp_path: Path, trigger: str, expected: str
) -> None:
    _, runner, _, _ = _world(tmp_path, {trigger: StepTimeout("too slow")})
    done = runner.drive(runner.create(RunOptions()).id)
    assert done.outcome is Outcome.failed and done.error_reason == expected


class _OldStyleError(RemoteError):
    reason = "not_a_known_code"  # type: ignore[assignment]  # what a stale subclass may do


def test_an_unknown_reason_code_still_fails_and_cleans_up_the_run(tmp_path: Path) -> None:
    _, runner, calls, _ = _world(tmp_path, {"install": _OldStyleError("odd")})
    done = runner.drive(runner.create(RunOptions()).id)
    assert done.state is RunState.terminated and done.error_reason == "internal"
    assert calls[-1] == "cleanup"


def test_a_crashing_handler_still_cleans_up(tmp_path: Path) -> None:
    _, runner, calls, _ = _world(tmp_path, {"train": ZeroDivisionError("bug")})
    done = runner.drive(runner.create(RunOptions()).id)
    assert done.state is RunState.terminated and done.error_reason == "internal"
    assert calls[-1] == "cleanup"


def test_interrupt_cancels_cleans_up_and_is_reraised(tmp_path: Path) -> None:
    store, runner, calls, _ = _world(tmp_path, {"train": KeyboardInterrupt()})
    run = runner.create(RunOptions())
    with pytest.raises(KeyboardInterrupt):
        runner.drive(run.id)
    done = store.get(run.id)
    assert done.state is RunState.terminated and done.outcome is Outcome.cancelled
    assert calls[-1] == "cleanup" and done.lease_owner is None


def test_an_interrupt_between_two_steps_still_cancels_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal lands wherever the main thread is: here right after the provision step
    was written, while the loop checks its lease before the next step."""
    from thinnka.runner import drive as runner_module

    class InterruptedBetweenSteps(runner_module.LeaseKeeper):
        reads = 0

        @property
        def lost(self) -> bool:
            type(self).reads += 1
            if type(self).reads == 4:  # before connect: the pod exists
                raise KeyboardInterrupt
            return self._lost

        @lost.setter
        def lost(self, value: bool) -> None:
            self._lost = value

    monkeypatch.setattr(runner_module, "LeaseKeeper", InterruptedBetweenSteps)
    store, runner, calls, _ = _world(tmp_path)
    run = runner.create(RunOptions())
    with pytest.raises(KeyboardInterrupt):
        runner.drive(run.id)
    done = store.get(run.id)
    assert (done.state, done.outcome) == (RunState.terminated, Outcome.cancelled)
    assert calls == ["check_gate", "estimate", "provision", "cleanup"]


def test_a_database_failure_during_training_leaves_the_pod_to_its_watchdog(
    tmp_path: Path,
) -> None:
    """The training goes on under the pod's watchdog (as after Ctrl-C); nothing more is
    written, the line says where the pod is, and the stop note tells `recover` why."""
    from thinnka.errors import StoreError
    from thinnka.lease import read_stop_note

    failure = StoreError("The database x is unavailable: disk full.", cause="disk full")
    store, runner, calls, _ = _world(tmp_path, {"push": failure})
    run = runner.create(RunOptions())
    with pytest.raises(StoreError) as stopped:
        runner.drive(run.id)
    assert "pod-1" in stopped.value.message and "watchdog" in stopped.value.message
    assert "cleanup" not in calls
    assert store.get(run.id).state is RunState.training
    note = read_stop_note(tmp_path, run.id)
    assert note is not None and note["left"] == {"pod-1": "left to its watchdog"}
    assert note["why"] == "the database was unavailable (disk full)"


def test_failed_cleanup_leaves_the_run_failed_for_recover(tmp_path: Path) -> None:
    store, runner, calls, _ = _world(
        tmp_path,
        {"connect": RemoteError("no ssh"), "cleanup": RemoteError("runpod down")},
    )
    run = runner.create(RunOptions())
    stuck = runner.drive(run.id)
    assert stuck.state is RunState.failed and stuck.lease_owner is None
    assert "cleanup_error" in [e.kind for e in store.events(run.id)]
    assert [r.id for r in store.runs_needing_recovery()] == [run.id]
    done = runner.drive(run.id)  # what `thinnka recover` does, the handler now succeeds
    assert done.state is RunState.terminated and done.outcome is Outcome.failed
    assert calls[-2:] == ["cleanup", "cleanup"]


def test_resume_continues_from_the_stored_state(tmp_path: Path) -> None:
    store, runner, calls, _ = _world(tmp_path)
    run = runner.create(RunOptions())
    runner.drive(run.id, stop_at=RunState.training)
    assert store.get(run.id).state is RunState.training
    calls.clear()
    done = runner.drive(run.id)
    assert calls == ["push", "terminate"] and done.outcome is Outcome.succeeded


def test_a_run_driven_elsewhere_is_not_touched(tmp_path: Path) -> None:
    store, runner, calls, _ = _world(tmp_path)
    run = store.create_run(RunOptions(), owner="other-process", lease_seconds=60)
    with pytest.raises(LeaseHeld, match="other-process"):
        runner.drive(run.id)
    assert calls == [] and store.get(run.id).state is RunState.created


def test_cancel_request_is_honoured_between_steps(tmp_path: Path) -> None:
    store, runner, calls, _ = _world(tmp_path)
    run = runner.create(RunOptions())
    runner.drive(run.id, stop_at=RunState.installed)
    store.request_cancel(run.id)
    done = runner.drive(run.id)
    assert done.outcome is Outcome.cancelled and calls[-1] == "cleanup"
    assert "train" not in calls


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over(tmp_path: Path) -> None:
    import subprocess
    import sys

    from thinnka.lease import make_owner_id, owner_is_dead

    store, runner, calls, _ = _world(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    host = make_owner_id().split(":")[0]
    dead_owner = f"{host}:{gone.stdout.strip()}:abcdef"
    assert owner_is_dead(dead_owner)
    assert not owner_is_dead(f"{host}:1:abcdef")  # pid 1 is alive
    assert not owner_is_dead(f"another-host:{gone.stdout.strip()}:abcdef")
    run = store.create_run(RunOptions(), owner=dead_owner, lease_seconds=600)
    done = runner.drive(run.id)
    assert done.outcome is Outcome.succeeded and calls[0] == "check_gate"
    assert "lease_taken" in [e.kind for e in store.events(run.id)]


def test_a_lost_takeover_race_names_the_winner_and_never_drives(tmp_path: Path) -> None:
    """Two `resume` see the same dead holder; the one whose takeover loses must name the
    process that won (alive), not the dead one, and must not drive."""
    import subprocess
    import sys

    from thinnka.lease import make_owner_id

    store, runner, calls, _ = _world(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    host = make_owner_id().split(":")[0]
    dead_owner, winner = f"{host}:{gone.stdout.strip()}:abcdef", f"{host}:1:winner"
    run = store.create_run(RunOptions(), owner=dead_owner, lease_seconds=600)
    take_over = store.take_over_lease

    def rival_first(run_id: str, dead: str, owner: str, *, seconds: float) -> bool:
        # The rival read the same dead holder and takes the lease just before us.
        assert take_over(run_id, dead, winner, seconds=seconds)
        return take_over(run_id, dead, owner, seconds=seconds)

    store.take_over_lease = rival_first  # type: ignore[method-assign]
    with pytest.raises(LeaseHeld) as held:
        runner.drive(run.id)
    assert held.value.holder == winner and winner in held.value.message
    assert dead_owner not in held.value.message
    assert calls == [] and store.get(run.id).lease_owner == winner
    taken = [e.message for e in store.events(run.id) if e.kind == "lease_taken"]
    assert len(taken) == 1 and taken[0].startswith(winner)
