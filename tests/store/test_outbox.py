"""Migration 0002 (outbox and metrics) on a database made by 0001, and the metrics table."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, inspect, text

from thinnka.events.metrics import MetricLine, ingest_metrics
from thinnka.options import RunOptions
from thinnka.store import Store
from thinnka.store.db import HEAD_REVISION, _alembic_config, create_db_engine, migrate


def _database_at(revision: str, folder: Path) -> Engine:
    """An SQLite database as an older thinnka left it: migrated up to ``revision`` only."""
    from alembic import command

    engine = create_db_engine(f"sqlite:///{folder / 'old.db'}", folder)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return engine


def test_0002_upgrades_a_0001_database_keeping_its_runs(tmp_path: Path) -> None:
    engine = _database_at("0001", tmp_path)
    assert "outbox_events" not in inspect(engine).get_table_names()
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO runs (id, state, options, repo_id, cost_usd, remote, cancel_requested,"
            " created_at, updated_at) VALUES ('r-old001', 'terminated', '{}', 'o/m', 0.5, '{}',"
            " 0, '2026-11-30 10:00:00', '2026-11-30 11:00:00')"
        ))  # fmt: skip
    assert migrate(engine, tmp_path) is True
    tables = set(inspect(engine).get_table_names())
    assert {"outbox_events", "outbox_deliveries", "run_metrics"} <= tables
    with engine.connect() as connection:
        assert connection.execute(text("select version_num from alembic_version")).scalar() == (
            HEAD_REVISION
        )
        assert connection.execute(text("select repo_id from runs")).scalar() == "o/m"


def test_metrics_are_stored_once_per_logged_line(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    migrate(engine, tmp_path)
    store = Store(engine)
    run = store.create_run(RunOptions())
    log = tmp_path / "remote.log"
    log.write_text("[train] {'loss': 2.0, 'epoch': 0.5}\n[train] hello\n[train] {'loss': 1.5, ")
    assert ingest_metrics(store.metrics, run.id, log, every=5) == 1
    with open(log, "a") as handle:  # the half line completes, another follows
        handle.write("'epoch': 1.0}\n[train] {'loss': '1.25', 'epoch': '1.5'}\n")
    assert ingest_metrics(store.metrics, run.id, log, every=5) == 2
    assert ingest_metrics(store.metrics, run.id, log, every=5) == 0  # the same bytes add nothing
    first_end = len("[train] {'loss': 2.0, 'epoch': 0.5}\n")
    lines = [MetricLine("train", {"loss": 9.0}, first_end)]  # a line stored before is refused
    assert store.metrics.add(run.id, lines, steps=[1]) == 0
    series = store.metrics.series(run.id)  # logging_steps 5 with logging_first_step: 1, 5, 10
    assert series["loss"] == [(1, 2.0), (5, 1.5), (10, 1.25)]
    assert series["epoch"] == [(1, 0.5), (5, 1.0), (10, 1.5)]


def test_0003_scrubs_sink_urls_already_stored_in_runs_options(tmp_path: Path) -> None:
    engine = _database_at("0002_outbox", tmp_path)
    token = "CANARYstoredDiscordToken0003"
    discord = f"https://discord.com/api/webhooks/1/{token}"
    options = json.dumps(
        {
            "repo_id": "o/m",
            "progress_url": "https://hooks.example/x",
            "discord_webhook_url": discord,
        }
    )
    with engine.begin() as connection:
        for run_id, stored in (("r-old003", options), ("r-plain3", '{"repo_id": "o/m"}')):
            connection.execute(
                text("INSERT INTO runs (id, state, options, repo_id, cost_usd, remote, "
                     "cancel_requested, created_at, updated_at) VALUES (:id, 'training', :o, "
                     "'o/m', 0, '{}', 0, '2026-12-01 10:00:00', '2026-12-01 11:00:00')"),
                {"id": run_id, "o": stored},
            )  # fmt: skip
    assert migrate(engine, tmp_path) is True
    store = Store(engine)
    scrubbed = store.get("r-old003").options
    assert (scrubbed.progress_url, scrubbed.discord_webhook_url) == (None, None)
    assert scrubbed.flag_sinks == ("discord", "webhook") and scrubbed.repo_id == "o/m"
    assert store.get("r-plain3").options.flag_sinks == ()
    assert token.encode() not in (tmp_path / "old.db").read_bytes()
