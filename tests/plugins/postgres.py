"""A private PostgreSQL server for the tests, and the database-backend parameter.

``postgres_server`` (once per session) runs ``initdb`` into a temporary folder
and starts the real server on a free loopback port, with no Unix socket and
trust authentication for loopback only: it can be reached by this machine
alone and lives as long as the session. ``initdb`` refuses to run as root, so
as root the folder belongs to the ``postgres`` OS user and the binaries run as
that user. Without binaries (or when the server will not start) the tests that
need it are skipped, except under CI, where they fail: CI installs Debian's
``postgresql`` package (``.ci/run``).

``db_backend`` parametrizes a test over SQLite and PostgreSQL. It says which
database thinnka uses the way a user does: a ``.env`` in the test's
``tmp_path`` with ``THINNKA_DB_URL`` (a fresh database per test; creating one
costs tens of milliseconds), or no ``.env`` at all for SQLite.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "Backend",
    "PostgresServer",
    "db_backend",
    "postgres_server",
    "postgres_url",
    "start_postgres_server",
]

BACKENDS = ("sqlite", "postgresql")
_USER = "thinnka"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _bin_dir() -> Path | None:
    """Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key)
    return Path(versions[-1]).parent if versions else None


def _version_key(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; ``create_database`` gives each test its own database."""

    bin_dir: Path
    data_dir: Path
    port: int
    run_as: str | None

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        dsn = f"host=127.0.0.1 port={self.port} user={_USER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _command(self, *args: str) -> list[str]:
        if self.run_as is None:
            return list(args)
        return ["runuser", "-u", self.run_as, "--", *args]

    def start(self) -> PostgresServer:
        self._check(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", _USER,
                    "--auth=trust", "--encoding=UTF8", "--no-sync")  # fmt: skip
        log = self.data_dir / "server.log"
        # A free port can be taken between probing and binding (by another pytest-xdist
        # worker's server, say): then a new port, a few times.
        for attempt in range(5):
            if attempt:
                self.port = _free_port()
            # Throwaway data: no fsync. No Unix socket: nothing outside this folder.
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                "-c unix_socket_directories='' -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200"
            )
            try:
                self._check(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                            str(log), "-o", options, "-w", "-t", "60", "start")  # fmt: skip
                return self
            except subprocess.CalledProcessError:
                said = log.read_text(errors="replace") if log.exists() else ""
                if "could not bind" not in said and "already in use" not in said:
                    raise
        raise RuntimeError(f"no free port for PostgreSQL: {log.read_text(errors='replace')}")

    def stop(self) -> None:
        """Immediate shutdown (SIGQUIT to the postmaster): the data is thrown away anyway."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
        except (OSError, ValueError, IndexError):
            return  # not running
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def _check(self, *args: str) -> None:
        subprocess.run(self._command(*args), check=True, capture_output=True, timeout=120)


def start_postgres_server(port: int | None = None) -> tuple[PostgresServer, Path]:
    """A private server in a new temporary folder (the caller stops it and removes the folder),
    on ``port`` if it is free, else on a free one."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="thinnka-pg-"))
    run_as: str | None = None
    if os.geteuid() == 0:  # initdb refuses root: the data folder belongs to `postgres`
        run_as = "postgres"
        entry = pwd.getpwnam(run_as)
        os.chmod(root, 0o755)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data_dir = root / "data"
    server = PostgresServer(bin_dir, data_dir, port or _free_port(), run_as)
    try:
        server.start()
    except (OSError, KeyError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc} {detail.decode()[-500:]}") from exc
    return server, root


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's private server; skipped without one, except under CI."""
    try:
        server, root = start_postgres_server()
    except RuntimeError as exc:
        if _in_ci():
            pytest.fail(f"CI must run the PostgreSQL tests: {exc}")
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the private server."""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@dataclass(frozen=True)
class Backend:
    kind: str  # "sqlite" or "postgresql"
    url: str | None  # THINNKA_DB_URL, or None for the SQLite file in the state folder

    def environ(self, state_dir: Path) -> dict[str, str]:
        """The settings environment of a thinnka that uses this backend."""
        env = {"THINNKA_STATE_DIR": str(state_dir)}
        if self.url:
            env["THINNKA_DB_URL"] = self.url
        return env


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Run the test on SQLite and on PostgreSQL (see the module docstring)."""
    if request.param == "sqlite":
        return Backend("sqlite", None)
    url = request.getfixturevalue("postgres_url")
    (tmp_path / ".env").write_text(f"THINNKA_DB_URL={url}\n")
    return Backend("postgresql", url)
