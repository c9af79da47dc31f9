"""The shared records: reason codes, a run's remote facts, plan candidates, the shell pool."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from thinnka.errors import Cancelled, PreflightError, RemoteError, ThinnkaError
from thinnka.options import RunOptions
from thinnka.planning.facts import PlanCandidate
from thinnka.reasons import FAILURES, Reason, RetryClass
from thinnka.services import ShellPool
from thinnka.settings import load_settings
from thinnka.store import open_store
from thinnka.store.records import LogPosition, RemoteFacts

RUN_FAILURE_CODES = {
    "precheck", "auth", "no_capacity", "ssh_timeout", "setup_failed", "training_failed",
    "push_failed", "max_duration", "max_cost", "cancelled", "pod_lost", "internal",
    "invalid_config",
}  # fmt: skip


def test_failure_codes_are_exactly_the_agreed_strings_and_every_code_maps_to_one() -> None:
    assert {str(code) for code in FAILURES} == RUN_FAILURE_CODES
    for code in Reason:
        assert code.failure in FAILURES, code
        assert isinstance(code.retry, RetryClass)
    assert Reason.gated.failure is Reason.precheck
    assert Reason.pod_gone.failure is Reason.pod_lost
    assert Reason.no_capacity.retry is RetryClass.retryable
    assert Reason.auth.retry is RetryClass.user_action


def test_errors_carry_enum_reasons_and_refuse_unknown_codes() -> None:
    assert PreflightError("x").reason is Reason.precheck
    assert RemoteError("x", reason="training_failed").reason is Reason.training_failed
    assert Cancelled("x").reason == "cancelled"  # a StrEnum compares as its string
    assert ThinnkaError("x").reason is Reason.internal
    with pytest.raises(ValueError, match="no_such_code"):
        RemoteError("x", reason="no_such_code")


def test_remote_facts_read_old_rows_and_keep_unknown_keys() -> None:
    assert RemoteFacts.from_json(None) == RemoteFacts()
    old = {
        "run_dir": "/w/thinnka/r-1",
        "hub_baseline": None,
        "train_started_at": "2026-01-02T03:04:05+00:00",
        "train_pid": "42",
        "logs": {"setup": {"offset": 10}},
        "watchdog": {"pid": 7},  # a key this version does not know
    }
    facts = RemoteFacts.from_json(old)
    assert facts.run_dir == "/w/thinnka/r-1" and facts.train_pid == 42
    assert facts.train_started_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert facts.hub_baseline is None
    assert facts.logs == {"setup": LogPosition(offset=10, local=None)}
    again = facts.to_json()
    assert again["watchdog"] == {"pid": 7} and again["hub_baseline"] is None
    assert RemoteFacts.from_json(again) == facts


def test_remote_facts_round_trip_through_the_store(tmp_path: Path) -> None:
    store = open_store(load_settings(environ={"THINNKA_STATE_DIR": str(tmp_path)}, cwd=tmp_path))
    run = store.create_run(RunOptions(), owner="me")
    assert run.remote == RemoteFacts()
    when = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    facts = RemoteFacts(
        run_dir="/r", hub_baseline=when, train_started_at=when, logs={"train": LogPosition(5, 3)}
    )
    assert store.record(run.id, owner="me", updates={"remote": facts}).remote == facts
    assert store.get(run.id).remote == facts


def test_plan_candidates_read_rows_with_missing_fields() -> None:
    candidate = PlanCandidate.from_json({"id": "NVIDIA L40S"})
    assert (candidate.display_name, candidate.gpu_count, candidate.price_per_hour) == (
        "NVIDIA L40S", 1, None,
    )  # fmt: skip
    assert PlanCandidate.from_json(candidate.to_json()) == candidate


class _Shell:
    def __init__(self) -> None:
        self.active, self.closed = True, False

    def is_active(self) -> bool:
        return self.active

    def close(self) -> None:
        self.closed = True


def test_shell_pool_reuses_live_shells_only_and_closes_all() -> None:
    pool = ShellPool()
    live, dead = _Shell(), _Shell()
    pool.put("r-1", live)
    pool.put("r-2", dead)
    dead.active = False
    assert pool.get("r-1") is live and pool.get("r-2") is None and pool.get("r-3") is None
    pool.close_all()
    assert live.closed and dead.closed and pool.get("r-1") is None


def test_restart_facts_round_trip_and_stay_absent_until_a_restart() -> None:
    import datetime as dt

    from thinnka.store.records import RemoteFacts
    from thinnka.store.restart_facts import EarlierPod, RestartFacts

    assert "restarts" not in RemoteFacts().to_json()  # a run that never lost a pod
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    lost = EarlierPod("pod1", "NVIDIA L40S", 0.79, when, when + dt.timedelta(hours=1), 0.79, "lost")
    facts = RestartFacts(1, False, 40, "abc123", when, (lost,))
    back = RemoteFacts.from_json(RemoteFacts(restarts=facts).to_json())
    assert back.restarts == facts and back.restarts.earlier_cost == 0.79
