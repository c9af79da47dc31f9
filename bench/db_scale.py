"""The store at team scale, on SQLite and on PostgreSQL.

- ``thinnka ls`` (the real command, process start included) over a database of
  10,000 runs: the default listing (100 active runs) and ``ls --all --json``
  (all 10,000 printed).
- one ``thinnka recover`` pass over 1,000 runs whose processes died before a
  pod existed: each is cancelled and driven to ``terminated`` (lease, two
  guarded transitions, events), then one reap against the emulated Runpod.

PostgreSQL is a private server on loopback (tests/plugins/postgres.py, with
fsync off, as in the tests): the figures show thinnka's own cost, not disk
flushes or network round trips.
Run: python bench/db_scale.py
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, report

LS_RUNS, LS_ACTIVE, RECOVER_RUNS = 10_000, 100, 1_000


def fill(url: str, state_dir: Path, runs: int, *, active: int) -> None:
    """Bulk-insert ``runs`` runs (the last ``active`` not terminated), one event each."""
    from sqlalchemy import insert

    from thinnka.options import RunOptions
    from thinnka.store import Store
    from thinnka.store.db import open_engine
    from thinnka.store.models import RunEventRow, RunRow

    engine = open_engine(url, state_dir)
    options = RunOptions(repo_id="org/model", sft=True).to_json()
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    rows, events = [], []
    for i in range(runs):
        at = start + dt.timedelta(minutes=i)
        done = i < runs - active
        rows.append(
            {
                "id": f"r-{i:06d}", "state": "terminated" if done else "created",
                "outcome": "succeeded" if done else None, "options": options,
                "repo_id": "org/model", "remote": {}, "cost_usd": 0.1 if done else 0.0,
                "cancel_requested": False, "created_at": at, "updated_at": at,
                "ended_at": at if done else None,
            }
        )  # fmt: skip
        events.append({"run_id": f"r-{i:06d}", "at": at, "kind": "created", "message": "."})
    with engine.begin() as connection:
        connection.execute(insert(RunRow), rows)
        connection.execute(insert(RunEventRow), events)
    Store(engine).installation_id()
    engine.dispose()


def thinnka(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "thinnka", *args]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def measure(
    kind: str, url: str | None, recover_url: str | None, root: Path, runpod: object
) -> None:
    """``url``/``recover_url``: two fresh PostgreSQL databases, or None for SQLite files."""
    workdir = root / kind
    state = workdir / "state"
    state.mkdir(parents=True)
    database = url or f"sqlite:///{state / 'thinnka.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THINNKA_", "RUNPOD_"))}
    env.update(
        PYTHONPATH=str(ROOT), THINNKA_STATE_DIR=str(state), COLUMNS="200", HF_TOKEN="hf_bench",
        RUNPOD_API_KEY=runpod.api_key, RUNPOD_API_BASE_URL=runpod.base_url,  # type: ignore[attr-defined]
    )  # fmt: skip
    if url:
        env["THINNKA_DB_URL"] = url

    fill(database, state, LS_RUNS, active=LS_ACTIVE)
    report(f"{kind}: ls ({LS_ACTIVE} active of {LS_RUNS})", _timed(workdir, env, "ls"))
    report(f"{kind}: ls --all --json ({LS_RUNS})", _timed(workdir, env, "ls", "--all", "--json"))

    recover_db = recover_url
    recover_state = root / f"{kind}-recover" / "state"
    recover_state.mkdir(parents=True)
    if recover_db:
        env["THINNKA_DB_URL"] = recover_db
    env["THINNKA_STATE_DIR"] = str(recover_state)
    fill(
        recover_db or f"sqlite:///{recover_state / 'thinnka.db'}",
        recover_state, RECOVER_RUNS, active=RECOVER_RUNS,
    )  # fmt: skip
    started = time.perf_counter()
    result = thinnka(recover_state.parent, env, "recover")
    elapsed = time.perf_counter() - started
    assert result.stdout.count(": terminated") == RECOVER_RUNS, result.stdout[-500:]
    report(f"{kind}: recover pass over {RECOVER_RUNS} dead runs", [elapsed])


def _timed(workdir: Path, env: dict[str, str], *args: str) -> list[float]:
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        thinnka(workdir, env, *args)
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    from tests.plugins.postgres import start_postgres_server
    from tests.world.runpod import FakeRunpod

    server, pg_root = start_postgres_server()
    runpod = FakeRunpod().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            measure("sqlite", None, None, Path(tmp), runpod)
            urls = server.create_database(), server.create_database()
            measure("postgresql", *urls, Path(tmp), runpod)
    finally:
        runpod.stop()
        server.stop()
        shutil.rmtree(pg_root, ignore_errors=True)


if __name__ == "__main__":
    main()
