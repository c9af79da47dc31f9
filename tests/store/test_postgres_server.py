"""The tests' private PostgreSQL server starts beside other workers' (tests/plugins/postgres.py)."""

from __future__ import annotations

import shutil
import socket

import psycopg
import pytest

from tests.plugins.postgres import _bin_dir, start_postgres_server


def test_a_port_taken_before_the_server_binds_it_moves_the_server_to_a_free_one() -> None:
    """Another pytest-xdist worker may bind the probed port first: the server takes another."""
    if _bin_dir() is None:
        pytest.skip("no PostgreSQL server binaries")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        server, root = start_postgres_server(port=port)
        try:
            assert server.port != port
            dsn = f"host=127.0.0.1 port={server.port} user=thinnka dbname=postgres"
            with psycopg.connect(dsn, connect_timeout=10) as connection:
                assert connection.execute("SELECT 1").fetchone() == (1,)
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)
