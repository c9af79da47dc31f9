"""Opening the database: engine, SQLite pragmas, migrations at every start.

Migrations run in code, on the engine's own connection, under a file lock
with a check-lock-check so that two commands started together neither race
nor both upgrade (the pattern of SkyPilot's ``safe_alembic_upgrade``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from thinnka.resources import resource_dir

__all__ = ["HEAD_REVISION", "create_db_engine", "head_revision", "migrate"]

# The newest migration in migrations/versions. Knowing it without Alembic keeps
# every command's start fast: Alembic is imported only when an upgrade runs
# (a test checks this constant against Alembic's own answer).
HEAD_REVISION = "0002_outbox"


def create_db_engine(url: str, state_dir: Path) -> Engine:
    """An engine for ``url``; a SQLite file is created with mode 0600 in WAL mode."""
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        # The database holds run records (never secrets, but pod ids and hosts):
        # readable by its owner only; SQLite gives -wal/-shm the same mode.
        # Only a missing file is created here: closing a descriptor of a file
        # that SQLite has open drops this process's POSIX locks on it, and
        # another process may then delete the WAL under our connections.
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)
    state_dir.mkdir(parents=True, exist_ok=True)
    connect_args: dict[str, Any] = {"timeout": 30} if is_sqlite else {}
    engine = create_engine(url, connect_args=connect_args)
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()  # no ini file: Alembic must not touch logging
    config.set_main_option("script_location", str(resource_dir("migrations")))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's revision, read without Alembic (None for a new database)."""
    from sqlalchemy import inspect, text

    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine, state_dir: Path) -> bool:
    """Bring the schema to head; returns True when an upgrade ran."""
    if current_revision(engine) == HEAD_REVISION:
        return False
    with _file_lock(state_dir / ".migrate.lock"):
        # Another process may have upgraded while we waited for the lock.
        if current_revision(engine) == HEAD_REVISION:
            return False
        from alembic import command

        logging.getLogger("alembic").setLevel(logging.WARNING)
        config = _alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
