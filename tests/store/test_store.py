"""The run store on a real SQLite file and a real PostgreSQL server.

Tests that take ``db_backend`` run on both (see tests/plugins/postgres.py:
the backend is chosen by a ``.env`` in ``tmp_path``, as a user would); the
others are about the SQLite file itself.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from thinnka.errors import LeaseHeld, RefusedChoice, RunNotFound, StateConflict
from thinnka.machine import Outcome, RunState
from thinnka.options import RunOptions
from thinnka.settings import load_settings
from thinnka.store import Store, open_store
from thinnka.store.db import HEAD_REVISION, create_db_engine, head_revision, migrate


def _store(folder: Path) -> Store:
    return open_store(load_settings(environ={"THINNKA_STATE_DIR": str(folder)}, cwd=folder))


def test_migrations_create_schema_from_empty_and_rerun_is_a_noop(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    assert migrate(engine, tmp_path) is True
    tables = set(inspect(engine).get_table_names())
    assert {"runs", "run_events", "meta", "alembic_version"} <= tables
    with engine.connect() as connection:
        version = connection.execute(text("select version_num from alembic_version")).scalar()
    assert version == head_revision() == HEAD_REVISION
    assert migrate(engine, tmp_path) is False


def test_database_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    store = _store(tmp_path)
    path = tmp_path / "thinnka.db"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with store.engine.connect() as connection:
        assert connection.execute(text("pragma journal_mode")).scalar() == "wal"


@pytest.mark.usefixtures("db_backend")
def test_installation_id_is_made_once(tmp_path: Path) -> None:
    first = _store(tmp_path).installation_id()
    assert first.startswith("inst-")
    assert _store(tmp_path).installation_id() == first


@pytest.mark.usefixtures("db_backend")
def test_run_keeps_every_option_and_gets_a_readable_id(tmp_path: Path) -> None:
    store = _store(tmp_path)
    options = RunOptions(repo_id="org/m", sft=True, overrides=(("learning_rate", "2e-5"),))
    run = store.create_run(options)
    assert run.id.startswith("r-") and len(run.id) == 8
    # Aware UTC on both databases (PostgreSQL stores them as UTC timestamps).
    age = dt.datetime.now(dt.UTC) - store.get(run.id).created_at
    assert dt.timedelta(0) <= age < dt.timedelta(minutes=1)
    assert store.get(run.id).options == options
    assert [e.kind for e in store.events(run.id)] == ["created"]


@pytest.mark.usefixtures("db_backend")
def test_guarded_transition_writes_state_facts_and_event_together(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(), owner="me")
    moved = store.transition(
        run.id, owner="me", source=RunState.created, dest=RunState.gated,
        trigger="check_gate", message="ok", updates={"hub_model_id": "u/x"},
    )  # fmt: skip
    assert moved.state is RunState.gated and moved.hub_model_id == "u/x"
    last = store.events(run.id)[-1]
    assert (last.kind, last.from_state, last.to_state, last.message) == (
        "check_gate", "created", "gated", "ok",
    )  # fmt: skip


@pytest.mark.usefixtures("db_backend")
def test_transition_from_the_wrong_state_is_a_conflict_and_changes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(), owner="me")
    with pytest.raises(StateConflict, match="it is created"):
        store.transition(
            run.id, owner="me", source=RunState.gated, dest=RunState.estimated,
            trigger="estimate", updates={"pod_id": "p1"},
        )  # fmt: skip
    after = store.get(run.id)
    assert after.state is RunState.created and after.pod_id is None
    assert len(store.events(run.id)) == 1


@pytest.mark.usefixtures("db_backend")
def test_transition_without_the_lease_is_a_conflict(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(), owner="someone-else")
    with pytest.raises(StateConflict, match="someone-else"):
        store.transition(
            run.id, owner="me", source=RunState.created, dest=RunState.gated, trigger="check_gate"
        )
    assert store.get(run.id).state is RunState.created


@pytest.mark.usefixtures("db_backend")
def test_final_transition_sets_outcome_and_end_time(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(), owner="me")
    store.transition(run.id, owner="me", source=RunState.created, dest=RunState.failed,
                     trigger="fail", outcome=Outcome.failed)  # fmt: skip
    done = store.transition(run.id, owner="me", source=RunState.failed,
                            dest=RunState.terminated, trigger="cleanup")  # fmt: skip
    assert done.outcome is Outcome.failed and done.ended_at is not None


@pytest.mark.usefixtures("db_backend")
def test_only_known_facts_can_be_recorded(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions(), owner="me")
    with pytest.raises(ValueError, match="state"):
        store.record(run.id, owner="me", updates={"state": "terminated"})


@pytest.mark.usefixtures("db_backend")
def test_unknown_run_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RunNotFound):
        _store(tmp_path).get("r-nope00")


@pytest.mark.usefixtures("db_backend")
def test_lease_is_exclusive_until_it_expires(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run = store.create_run(RunOptions())
    store.acquire_lease(run.id, "a", seconds=60)
    with pytest.raises(LeaseHeld) as held:
        store.acquire_lease(run.id, "b", seconds=60)
    assert held.value.holder == "a"
    assert store.renew_lease(run.id, "a", seconds=0.001)
    assert not store.renew_lease(run.id, "b", seconds=60)
    expired = store.get(run.id).lease_expires_at
    assert expired is not None
    while dt.datetime.now(dt.UTC) <= expired:
        pass
    assert store.acquire_lease(run.id, "b", seconds=60).lease_owner == "b"
    assert [r.id for r in store.runs_needing_recovery()] == []
    store.release_lease(run.id, "b")
    assert [r.id for r in store.runs_needing_recovery()] == [run.id]


_ROUNDS = 3  # a few rounds, to give a race a chance to show


def _race(
    folder: str, run_id: str, host: str, start: object, done: object, results: object
) -> None:
    os.environ["THINNKA_HOSTNAME"] = host  # each process plays another machine
    from thinnka.lease import make_owner_id

    owner = make_owner_id()
    store = _store(Path(folder))
    for _ in range(_ROUNDS):  # one process per host for every round: spawning is the slow part
        start.wait()  # type: ignore[attr-defined]
        try:
            store.acquire_lease(run_id, owner, seconds=60)
            results.put((host, "won", owner))  # type: ignore[attr-defined]
        except LeaseHeld as held:
            results.put((host, "lost", held.holder))  # type: ignore[attr-defined]
        done.wait()  # type: ignore[attr-defined]  # the test has checked and released the lease


@pytest.mark.usefixtures("db_backend")
def test_two_processes_racing_for_one_lease_exactly_one_wins(tmp_path: Path) -> None:
    """Processes as distinct hosts (owner host names): one wins, the others name it."""
    from thinnka.lease import owner_host

    store = _store(tmp_path)
    run = store.create_run(RunOptions())
    context = multiprocessing.get_context("spawn")
    hosts = [f"host-{i}" for i in range(4)]
    start, done = context.Barrier(len(hosts)), context.Barrier(len(hosts) + 1)
    results = context.Queue()
    procs = [
        context.Process(target=_race, args=(str(tmp_path), run.id, h, start, done, results))
        for h in hosts
    ]
    for proc in procs:
        proc.start()
    winning_hosts = set()
    for _ in range(_ROUNDS):
        outcomes = [results.get(timeout=60) for _ in procs]
        winners = [(host, owner) for host, result, owner in outcomes if result == "won"]
        assert len(winners) == 1, outcomes
        winner_host, winner = winners[0]
        winning_hosts.add(winner_host)
        assert owner_host(winner) == winner_host
        losers = [holder for _, result, holder in outcomes if result == "lost"]
        assert losers == [winner] * (len(hosts) - 1), outcomes
        assert store.get(run.id).lease_owner == winner
        store.release_lease(run.id, winner)
        done.wait(timeout=60)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0


@pytest.mark.usefixtures("db_backend")
def test_a_run_claiming_a_repo_another_live_run_pushes_to_is_refused(tmp_path: Path) -> None:
    """Two runs pushing to one repo overwrite each other's files (and each one's push check
    could take the other's commit): the second is refused, with nothing created."""
    store = _store(tmp_path)
    first = store.create_run(RunOptions(), owner="me", hub_model_id="u/x")
    assert first.hub_model_id == "u/x"
    with pytest.raises(RefusedChoice, match=f"Run {first.id} \\(created\\) already pushes to u/x"):
        store.create_run(RunOptions(), hub_model_id="u/x")
    assert store.count_runs() == 1
    assert store.create_run(RunOptions(), hub_model_id="u/y").hub_model_id == "u/y"
    store.transition(first.id, owner="me", source=RunState.created, dest=RunState.failed,
                     trigger="fail")  # fmt: skip
    with pytest.raises(RefusedChoice):  # failed, not cleaned up: its pod may still push
        store.create_run(RunOptions(), hub_model_id="u/x")
    store.transition(first.id, owner="me", source=RunState.failed, dest=RunState.terminated,
                     trigger="cleanup", outcome=Outcome.failed)  # fmt: skip
    assert store.create_run(RunOptions(), hub_model_id="u/x").hub_model_id == "u/x"


def _claim(folder: str, start: object, results: object) -> None:
    store = _store(Path(folder))
    start.wait()  # type: ignore[attr-defined]
    try:
        run = store.create_run(RunOptions(), hub_model_id="u/raced")
        results.put(("created", run.id))  # type: ignore[attr-defined]
    except RefusedChoice as refused:
        results.put(("refused", refused.message))  # type: ignore[attr-defined]


@pytest.mark.usefixtures("db_backend")
def test_processes_claiming_one_repo_at_once_create_exactly_one_run(tmp_path: Path) -> None:
    """The check and the insert are one transaction that creators pass one at a time (an
    advisory lock on PostgreSQL, SQLite's single writer), not a look before leaping."""
    store = _store(tmp_path)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(4), context.Queue()
    procs = [context.Process(target=_claim, args=(str(tmp_path), start, results)) for _ in range(4)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    created = [run_id for kind, run_id in outcomes if kind == "created"]
    assert len(created) == 1, outcomes
    assert all(f"Run {created[0]} " in text for kind, text in outcomes if kind == "refused")
    assert [run.id for run in store.list_runs()] == created


def test_a_database_locked_past_its_timeout_is_one_store_error_then_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's boundary: the driver's OperationalError becomes a StoreError that
    names the database and the driver's words; for a while after, every call fails at
    once instead of waiting out the lock timeout again (a stopping run's cleanup and
    event lines would each wait that long)."""
    import sqlite3
    import time

    from sqlalchemy import event

    from thinnka.errors import StoreError
    from thinnka.store import db

    monkeypatch.setattr(db, "FAIL_FAST_S", 1.0)
    store = _store(tmp_path)
    run = store.create_run(RunOptions())
    # A short wait for the lock than thinnka's 30 s, set on this test's own engine.
    event.listen(store.engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout=100"))
    store.engine.dispose()
    holder = sqlite3.connect(tmp_path / "thinnka.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writes and keeps the lock
    try:
        with pytest.raises(StoreError) as failed:
            store.request_cancel(run.id)
        assert failed.value.cause == "database is locked"
        assert str(tmp_path / "thinnka.db") in failed.value.message
        started = time.monotonic()
        with pytest.raises(StoreError, match="database is locked"):
            store.get(run.id)  # a read, refused at once: the store is known down
        assert time.monotonic() - started < 0.05
    finally:
        holder.rollback()
        holder.close()
    time.sleep(1.0)
    assert store.get(run.id).cancel_requested is False  # usable again, nothing half-written
