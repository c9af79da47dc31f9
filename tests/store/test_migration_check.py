"""The migration check every command starts with: one query when the schema is current.

Runs on SQLite and PostgreSQL (``db_backend``, see tests/plugins/postgres.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from thinnka.settings import Settings, load_settings
from thinnka.store import open_store
from thinnka.store.db import HEAD_REVISION, create_db_engine, head_revision, migrate


def _settings(folder: Path) -> Settings:
    return load_settings(environ={"THINNKA_STATE_DIR": str(folder)}, cwd=folder)


def _statements(engine: Engine) -> list[str]:
    """The statements SQLAlchemy sends through ``engine`` from now on."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    return seen


def test_head_constant_is_alembics_head() -> None:
    # The constant lets a start skip Alembic; a new migration without it would go unnoticed.
    assert head_revision() == HEAD_REVISION


@pytest.mark.usefixtures("db_backend")
def test_current_schema_costs_one_query(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    open_store(settings).engine.dispose()  # made and upgraded: an installation that ran before
    engine = create_db_engine(settings.database_url, settings.state_dir)
    engine.connect().close()  # the driver's own first-connect questions are not the check's
    statements = _statements(engine)
    assert migrate(engine, settings.state_dir) is False
    assert statements == ["SELECT version_num FROM alembic_version"]


@pytest.mark.usefixtures("db_backend")
def test_new_database_is_upgraded_after_the_failed_probe(tmp_path: Path) -> None:
    # The probe's "no such table" must not count as the database being down: the
    # upgrade and every statement after it still run.
    settings = _settings(tmp_path)
    engine = create_db_engine(settings.database_url, settings.state_dir)
    statements = _statements(engine)
    assert migrate(engine, settings.state_dir) is True
    assert statements[0] == "SELECT version_num FROM alembic_version"
    assert len(statements) > 1  # inspected, then upgraded
    assert migrate(engine, settings.state_dir) is False
