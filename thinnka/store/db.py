"""Opening the database: engine, SQLite pragmas, migrations at every start.

Migrations run in code, on the engine's own connection, under a lock with a
check-lock-check so that two commands started together neither race nor both
upgrade (the pattern of SkyPilot's ``safe_alembic_upgrade``). The lock is a
file lock for SQLite (one machine) and a PostgreSQL advisory lock held by the
upgrade's own transaction for a server that several hosts share.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    InterfaceError,
    InternalError,
    OperationalError,
)

from thinnka.errors import ConfigError, StoreError, first_line
from thinnka.resources import resource_dir

__all__ = [
    "HEAD_REVISION",
    "DatabaseInfo",
    "create_db_engine",
    "database_info",
    "head_revision",
    "is_read_only",
    "migrate",
    "open_engine",
]

# The newest migration in migrations/versions. Knowing it without Alembic keeps
# every command's start fast: Alembic is imported only when an upgrade runs
# (a test checks this constant against Alembic's own answer).
HEAD_REVISION = "0005_clusters"

# The advisory lock every thinnka on every host takes around an upgrade of a
# PostgreSQL database: one fixed 64-bit key ("thinnka" in ASCII).
MIGRATION_LOCK_KEY = 0x7468696E6E6B61
# How long a command waits for another host's upgrade before giving up.
MIGRATION_LOCK_TIMEOUT_S = 120
# The execution option of a statement whose failure says nothing about the database's
# health (a missing table on a new database is SQLite's OperationalError).
_PROBE = "thinnka_probe"
_SELECT_REVISION = text("SELECT version_num FROM alembic_version")
_URL_HELP = "expected sqlite:///path/to/thinnka.db or postgresql+psycopg://user@host:port/db"


def database_url(url: str) -> URL:
    """``url`` parsed; a bare ``postgresql://`` means psycopg 3 (the ``postgres`` extra)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"THINNKA_DB_URL is not a database URL ({_URL_HELP}).") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"THINNKA_DB_URL names {parsed.get_backend_name()!r}; thinnka supports SQLite "
            f"and PostgreSQL ({_URL_HELP})."
        )
    return parsed


def shown_url(url: str | URL) -> str:
    """The URL as it may be printed: never with its password."""
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def create_db_engine(url: str, state_dir: Path, *, read_only: bool = False) -> Engine:
    """An engine for ``url``; a SQLite file is created with mode 0600 in WAL mode.

    ``read_only`` commands on PostgreSQL need no state folder: one that cannot be made
    is left to the commands that write there.
    """
    parsed = database_url(url)
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
        if path.stat().st_mode & 0o777 != 0o600:  # a read-only mount refuses even a no-op
            os.chmod(path, 0o600)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        if is_sqlite or not read_only:
            raise
    if is_sqlite:
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        try:
            # A run holds its engine for hours: connections the server dropped
            # meanwhile are noticed (pre-ping), and a dead server fails in 10 s.
            engine = create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        except ModuleNotFoundError:
            raise ConfigError(
                "PostgreSQL needs its driver: pip install 'thinnka[postgres]' (psycopg 3)."
            ) from None
    _Availability().watch(engine)
    return engine


# The driver errors that say "the database cannot be used now" (a full disk, a lock held
# past the timeout, a server gone), as opposed to a bug in a statement or a constraint that
# the store handles itself (IntegrityError).
_UNAVAILABLE = (OperationalError, InterfaceError, InternalError)
# After such an error every statement fails at once for this long instead of waiting out
# the lock timeout (30 s) again: the runner is stopping and cleaning up, and each event it
# prints, each lease write, would otherwise wait that long in turn.
FAIL_FAST_S = 60.0


class _Availability:
    """The store's boundary: nothing above it sees a driver's exception, only a
    ``StoreError`` with one line that names the database (never its password)."""

    def __init__(self) -> None:
        self.down: StoreError | None = None
        self.until = 0.0

    def watch(self, engine: Engine) -> None:
        event.listen(engine, "handle_error", self._on_error)
        event.listen(engine, "before_cursor_execute", self._before)

    def _on_error(self, context: ExceptionContext) -> None:
        execution = context.execution_context
        if execution is not None and execution.execution_options.get(_PROBE):
            return  # a statement allowed to fail (see current_revision): no verdict
        error = context.sqlalchemy_exception
        if isinstance(error, _UNAVAILABLE) or type(error) is DatabaseError:
            engine = context.engine
            where = shown_url(engine.url) if engine is not None else "the database"
            cause = first_line(context.original_exception)
            self.down = StoreError(f"The database {where} is unavailable: {cause}.", cause=cause)
            self.until = time.monotonic() + FAIL_FAST_S
            raise self.down

    def _before(self, *_args: Any) -> None:
        if self.down is not None and time.monotonic() < self.until:
            raise StoreError(self.down.message, cause=self.down.cause)


def open_engine(url: str, state_dir: Path, *, read_only: bool = False) -> Engine:
    """An engine whose schema is at head; an unreachable server is one clear error.

    ``read_only`` is for the commands that only read (``ls``, ``show``, ...): a SQLite
    database already at head is then opened read-only, so they work where nothing can
    be written (a read-only mount, a folder of another user). The other commands check
    that they can write before they start, rather than fail at their first write.
    """
    sqlite_file = _sqlite_file(url)
    if read_only and sqlite_file is not None and sqlite_file.is_file():
        engine = _read_only_engine(sqlite_file)
        if engine is not None:
            return engine
    try:
        engine = create_db_engine(url, state_dir, read_only=read_only)
        if sqlite_file is not None and not read_only:
            _require_writable(sqlite_file, state_dir)
        migrate(engine, state_dir)
    except OSError as exc:
        raise ConfigError(_unwritable(state_dir, exc)) from None
    except StoreError as exc:
        raise ConfigError(f"Cannot open the database {shown_url(url)}: {exc.cause}") from None
    except DBAPIError as exc:
        cause = first_line(exc.orig) if exc.orig else type(exc).__name__
        raise ConfigError(f"Cannot open the database {shown_url(url)}: {cause}") from None
    return engine


def is_read_only(engine: Engine) -> bool:
    """An engine ``open_engine`` opened read-only (nothing may be written through it)."""
    return engine.url.query.get("mode") == "ro" or "immutable" in engine.url.query


def _sqlite_file(url: str) -> Path | None:
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "").expanduser()


def _read_only_engine(path: Path) -> Engine | None:
    """``path`` opened read-only when its schema is current, else None (then it is opened
    as usual, and migrated, which needs it writable).

    ``mode=ro`` reads a database in WAL mode while its ``-shm`` file exists or can be
    made. In a folder nobody may write, without one, only ``immutable=1`` opens it, and
    immutable ignores the write-ahead log: it is used only when that log is empty.
    """
    from urllib.parse import quote

    wal = path.with_name(path.name + "-wal")
    flags = [{"mode": "ro"}]
    if not wal.exists() or wal.stat().st_size == 0:
        flags.append({"immutable": "1"})
    for flag in flags:
        query = {**flag, "uri": "true"}
        url = URL.create("sqlite", database=f"file:{quote(str(path))}", query=query)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_read_only_pragmas)
        try:
            revision = current_revision(engine)
        except DBAPIError:
            engine.dispose()
            continue
        if revision == HEAD_REVISION:
            return engine
        engine.dispose()
        return None
    return None


def _require_writable(path: Path, state_dir: Path) -> None:
    """The commands that write find out now, not at their first write (SQLite refuses a
    write to a file, its folder or its ``-wal``/``-shm`` files that it may only read)."""
    import errno

    siblings = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    for target in (state_dir, path.parent, path, *[p for p in siblings if p.exists()]):
        if not os.access(target, os.W_OK):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(target))


def _unwritable(state_dir: Path, exc: OSError) -> str:
    why = exc.strerror or type(exc).__name__
    if exc.filename and Path(exc.filename) != state_dir:
        why += f": {exc.filename}"
    if not state_dir.is_dir():
        return f"Cannot create the state folder {state_dir} ({why}); set THINNKA_STATE_DIR."
    return (
        f"The state folder {state_dir} is not writable ({why}); "
        "only ls, show, logs, report, plan, gpus and doctor work on a read-only database."
    )


def _sqlite_read_only_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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
    """The database's revision, read without Alembic (None for a new database).

    Every start asks this, and the version table exists at all but the first: one
    SELECT then. Only when that fails (no such table) is the schema inspected.
    """
    with engine.connect() as connection:
        try:
            return connection.execute(_SELECT_REVISION, execution_options={_PROBE: True}).scalar()
        except DBAPIError:
            connection.rollback()  # PostgreSQL refuses every statement after an error
        return _revision(connection)


def _revision(connection: Connection) -> str | None:
    from sqlalchemy import inspect

    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(_SELECT_REVISION).scalar()


def migrate(engine: Engine, state_dir: Path) -> bool:
    """Bring the schema to head; returns True when an upgrade ran."""
    if current_revision(engine) == HEAD_REVISION:
        return False
    if engine.dialect.name == "postgresql":
        return _migrate_postgresql(engine)
    with _file_lock(state_dir / ".migrate.lock"):
        with engine.begin() as connection:
            # Another process may have upgraded while we waited for the lock.
            if _revision(connection) == HEAD_REVISION:
                return False
            _upgrade(connection)
        return True


def _migrate_postgresql(engine: Engine) -> bool:
    """Upgrade under a transaction-scoped advisory lock (hosts share no files).

    PostgreSQL's DDL is transactional: the upgrade commits together with the
    lock's release, so a host that waited sees either no upgrade or all of it.
    """
    with engine.begin() as connection:
        connection.execute(text(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT_S}s'"))
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        if _revision(connection) == HEAD_REVISION:
            return False  # another host upgraded while we waited
        _upgrade(connection)
    return True


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.util import CommandError

    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = _alembic_config()
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, "head")
    except CommandError:
        # Typically a teammate's newer thinnka upgraded a shared database.
        raise ConfigError(
            f"The database is at migration {_revision(connection)!r}, which this thinnka "
            f"(newest migration {HEAD_REVISION}) does not know: upgrade thinnka."
        ) from None


@dataclass(frozen=True)
class DatabaseInfo:
    """What ``thinnka doctor`` says about the database."""

    kind: str  # "sqlite" or "postgresql"
    server_version: str
    url: str  # without its password
    revision: str | None

    @property
    def migration_state(self) -> str:
        if self.revision == HEAD_REVISION:
            return f"migration {self.revision} (current)"
        return f"migration {self.revision or 'none'} (this thinnka's newest is {HEAD_REVISION})"


def database_info(engine: Engine) -> DatabaseInfo:
    with engine.connect() as connection:
        version = connection.dialect.server_version_info or ()
        revision = _revision(connection)
    return DatabaseInfo(
        kind=engine.dialect.name,
        server_version=".".join(str(part) for part in version) or "unknown",
        url=shown_url(engine.url),
        revision=revision,
    )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
