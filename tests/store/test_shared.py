"""One PostgreSQL database shared by several hosts, as a team uses it.

A "host" is a process with its own THINNKA_HOSTNAME (the host part of lease
owner ids) and its own state folder: hosts share the database and nothing else.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import create_engine, text

from tests.plugins.postgres import PostgresServer
from thinnka.errors import ConfigError, LeaseHeld
from thinnka.lease import make_owner_id, owner_is_dead
from thinnka.machine import HANDLER_TRIGGERS, Outcome, RunState
from thinnka.operations import run_summary
from thinnka.options import RunOptions
from thinnka.runner import Runner
from thinnka.settings import Settings, load_settings
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord, Store, open_store
from thinnka.store.db import (
    HEAD_REVISION,
    create_db_engine,
    database_info,
    head_revision,
    migrate,
)


def _settings(url: str, state_dir: Path) -> Settings:
    environ = {"THINNKA_DB_URL": url, "THINNKA_STATE_DIR": str(state_dir)}
    return load_settings(environ=environ, cwd=state_dir)


def _migrate(url: str, state_dir: str, barrier: object, results: object) -> None:
    engine = create_db_engine(url, Path(state_dir))
    # Everything slow before the barrier (imports, the first connection, reading
    # the migration scripts), so that the upgrades themselves start together.
    head_revision()
    engine.connect().close()
    barrier.wait()  # type: ignore[attr-defined]
    try:
        upgraded = migrate(engine, Path(state_dir))
        results.put(("ok", upgraded, Store(engine).installation_id()))  # type: ignore[attr-defined]
    except Exception as exc:  # reported to the test, which names it
        results.put(("error", repr(exc), None))  # type: ignore[attr-defined]


def test_hosts_starting_at_once_migrate_once_and_share_one_installation_id(
    postgres_url: str, tmp_path: Path
) -> None:
    context = multiprocessing.get_context("spawn")
    hosts = 4
    barrier, results = context.Barrier(hosts), context.Queue()
    procs = [
        context.Process(target=_migrate, args=(postgres_url, str(tmp_path / f"host{i}"),
                                               barrier, results))
        for i in range(hosts)
    ]  # fmt: skip
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert sorted(o[:2] for o in outcomes) == [("ok", False)] * (hosts - 1) + [("ok", True)]
    assert len({o[2] for o in outcomes}) == 1, outcomes  # one installation id per database
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    assert [tuple(v) for v in versions] == [(HEAD_REVISION,)]


class _Step:
    """A stand-in handler: the runner's lease rules are under test, not the steps."""

    trigger: ClassVar[str] = ""

    def __init__(self, trigger: str) -> None:
        self.trigger = trigger  # type: ignore[misc]

    def timeout_s(self, run: RunRecord) -> float:
        return 10.0

    def run(self, ctx: StepContext) -> StepResult:
        return StepResult(message=f"{self.trigger} done")


class _Events:
    def __init__(self) -> None:
        self.names: list[str] = []

    def event(self, name: str, message: str, **fields: object) -> None:
        self.names.append(name)

    def line(self, stage: str, text: str) -> None:
        pass


# Host A: creates a leased run, prints it, renews the lease for argv[2] seconds, exits.
_HOST_A = """
import sys, time
from thinnka.options import RunOptions
from thinnka.runner import make_owner_id
from thinnka.settings import load_settings
from thinnka.store import open_store
store = open_store(load_settings())
lease, live_for = float(sys.argv[1]), float(sys.argv[2])
run = store.create_run(RunOptions(), owner=make_owner_id(), lease_seconds=lease)
print(run.id, run.lease_owner, flush=True)
until = time.monotonic() + live_for
while time.monotonic() < until:
    time.sleep(lease / 4)
    store.renew_lease(run.id, run.lease_owner, seconds=lease)
"""


def _host_a(
    url: str, state_dir: Path, lease: float, live_for: float
) -> tuple[subprocess.Popen[str], str, str]:
    env = {**os.environ, "THINNKA_DB_URL": url, "THINNKA_HOSTNAME": "host-a",
           "THINNKA_STATE_DIR": str(state_dir)}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", _HOST_A, str(lease), str(live_for)], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    run_id, holder = proc.stdout.readline().split()
    return proc, run_id, holder


def _host_b(url: str, state_dir: Path) -> tuple[Store, Runner, _Events]:
    settings = _settings(url, state_dir)
    store = open_store(settings)
    handlers = {t: _Step(t) for t in HANDLER_TRIGGERS}
    events = _Events()
    runner = Runner(store, settings, handlers=handlers, output=events)  # type: ignore[arg-type]
    return store, runner, events


def test_resume_on_another_host_waits_for_the_lease_of_a_dead_holder(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = 5.0
    # Host A starts a run and dies holding its lease (its process is gone).
    proc, run_id, holder = _host_a(postgres_url, tmp_path / "a", lease, live_for=0)
    proc.wait(timeout=30)
    assert holder.startswith("host-a:")

    monkeypatch.setenv("THINNKA_HOSTNAME", "host-b")
    store, runner, events = _host_b(postgres_url, tmp_path / "b")
    # B cannot see A's processes: A's dead holder counts as alive until expiry...
    assert not owner_is_dead(holder)
    with pytest.raises(LeaseHeld, match="host-a"):
        runner.drive(run_id)  # what recover and cancel do: never wait
    assert store.get(run_id).state is RunState.created
    # ...and `show` names the host that holds it, as text and as JSON.
    assert run_summary(store, store.get(run_id), events=False)["lease_host"] == "host-a"
    env = {**os.environ, "THINNKA_DB_URL": postgres_url, "COLUMNS": "200"}
    shown = subprocess.run([sys.executable, "-m", "thinnka", "show", run_id], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"driven by host host-a ({holder})" in shown.stdout

    # On host A itself the same dead holder would be taken over at once (the local rule).
    monkeypatch.setenv("THINNKA_HOSTNAME", "host-a")
    assert owner_is_dead(holder)
    monkeypatch.setenv("THINNKA_HOSTNAME", "host-b")

    # resume waits for the lease to expire, then drives the run to its end.
    expires = store.get(run_id).lease_expires_at
    assert expires is not None
    done = runner.drive(run_id, wait_for_lease=True)
    assert dt.datetime.now(dt.UTC) >= expires
    assert done.outcome is Outcome.succeeded and done.lease_owner is None
    assert events.names.count("lease_wait") == 1
    assert "lease_taken" not in [e.kind for e in store.events(run_id)]  # expiry, not takeover


def test_resume_on_another_host_leaves_a_live_holder_alone(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, run_id, holder = _host_a(postgres_url, tmp_path / "a", lease=2.0, live_for=30)
    try:
        monkeypatch.setenv("THINNKA_HOSTNAME", "host-b")
        store, runner, events = _host_b(postgres_url, tmp_path / "b")
        with pytest.raises(LeaseHeld, match="host-a"):
            runner.drive(run_id, wait_for_lease=True)  # it renewed while we waited
        assert events.names == ["lease_wait"]
        after = store.get(run_id)
        assert after.lease_owner == holder and after.state is RunState.created
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_a_long_host_name_still_fits_the_lease_owner_column(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL enforces VARCHAR(64) where SQLite silently stores anything."""
    monkeypatch.setenv("THINNKA_HOSTNAME", "k8s-" + "x" * 96 + ".cluster.example")
    owner = make_owner_id()
    assert len(owner) <= 64
    store = open_store(_settings(postgres_url, tmp_path))
    run = store.create_run(RunOptions(), owner=owner)
    assert store.get(run.id).lease_owner == owner


def test_postgresql_writes_nothing_to_the_state_folders_database(
    postgres_url: str, tmp_path: Path
) -> None:
    store = open_store(_settings(postgres_url, tmp_path))
    store.create_run(RunOptions())
    assert store.count_runs() == 1
    assert not list(tmp_path.glob("thinnka.db*"))


def test_a_bare_postgresql_url_means_psycopg_and_doctor_facts_are_read(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    bare = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    store = open_store(_settings(bare, tmp_path))
    info = database_info(store.engine)
    assert (info.kind, info.revision) == ("postgresql", HEAD_REVISION)
    assert info.server_version[:2].rstrip(".").isdigit()
    assert info.migration_state == f"migration {HEAD_REVISION} (current)"
    assert info.url.startswith("postgresql+psycopg://thinnka@127.0.0.1:")


def test_a_database_from_a_newer_thinnka_is_one_clear_error(
    postgres_url: str, tmp_path: Path
) -> None:
    open_store(_settings(postgres_url, tmp_path))
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(ConfigError, match=r"migration '0099'.*upgrade thinnka"):
        open_store(_settings(postgres_url, tmp_path))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_one_line_exit_2_without_the_password(tmp_path: Path) -> None:
    canary = "pw-canary-5f2e"
    url = f"postgresql+psycopg://team:{canary}@127.0.0.1:{_free_port()}/thinnka"
    env = {**os.environ, "THINNKA_DB_URL": url, "THINNKA_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run([sys.executable, "-m", "thinnka", "ls"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Error: Cannot open the database postgresql+psycopg://team:")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert canary not in result.stdout + result.stderr
    assert not list((tmp_path / "state").glob("thinnka.db*"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@127.0.0.1/db", "supports SQLite and PostgreSQL"),
        ("not a url", "not a database URL"),
    ],
)
def test_an_unsupported_database_url_is_refused(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(_settings(url, tmp_path))
