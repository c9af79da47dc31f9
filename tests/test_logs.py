"""Logging: one format for structlog and stdlib loggers, run_id bound, secrets scrubbed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import structlog

from thinnka.logs import configure_logging, get_logger


def test_stdlib_and_structlog_lines_share_json_and_run_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json=True, secrets=["hf_SECRET42"])
    with structlog.contextvars.bound_contextvars(run_id="r-abc123"):
        get_logger("thinnka.test").info("transition", trigger="push")
        logging.getLogger("paramiko.transport").warning("auth with hf_SECRET42 failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["run_id"] for line in lines] == ["r-abc123", "r-abc123"]
    assert lines[0]["event"] == "transition" and lines[0]["trigger"] == "push"
    assert lines[1]["logger"] == "paramiko.transport" and "hf_SECRET42" not in lines[1]["event"]


def test_migrations_leave_the_logging_setup_alone(tmp_path: Path) -> None:
    from thinnka.store.db import create_db_engine, migrate

    configure_logging(json=True)
    before = list(logging.getLogger().handlers)
    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    assert migrate(engine, tmp_path)
    assert logging.getLogger().handlers == before
    assert not logging.getLogger("alembic").isEnabledFor(logging.INFO)
