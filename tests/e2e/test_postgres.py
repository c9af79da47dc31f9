"""One whole `thinnka run` with its records on PostgreSQL (the team setup).

The store and runner suites run on both databases; this is the one end-to-end
run on PostgreSQL that CI can afford: every command of it (run, show, ls,
doctor) uses THINNKA_DB_URL and nothing is written to state/thinnka.db.
"""

from __future__ import annotations

import json

import pytest

from tests.plugins.thinnka_world import World
from thinnka.store.db import HEAD_REVISION

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CPU = ["--trainer", "trl", "--set", "use_cpu=true", "--set", "bf16=false",
       "--set", "torch_dtype=float32"]  # fmt: skip


@pytest.mark.parametrize("world_database", ["postgresql"], indirect=True)
def test_sft_run_on_postgresql_writes_nothing_to_the_sqlite_file(
    world: World, world_database: str
) -> None:
    result = world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "2",
        "--dataset-name", world.hub.datasets.sft, *CPU,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_id = result.stdout.splitlines()[0].split()[1]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    assert world.hub.commits(shown["hub_model_id"]), "nothing was pushed"
    assert [entry.terminated_at is not None for entry in world.runpod.ledger()] == [True]

    listed = json.loads(world.thinnka("ls", "--all", "--json").stdout)
    assert [row["id"] for row in listed] == [run_id]
    doctor = json.loads(world.thinnka("doctor", "--json").stdout)
    database = next(check for check in doctor if check["name"] == "database")
    assert database["detail"].startswith("postgresql ")
    assert f"migration {HEAD_REVISION} (current)" in database["detail"]

    state = world.workdir / "state"
    assert not (state / "thinnka.db").exists()
    assert not list(state.glob("thinnka.db*"))

    from sqlalchemy import create_engine, text

    engine = create_engine(world_database)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, state FROM runs")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [(run_id, "terminated")]
