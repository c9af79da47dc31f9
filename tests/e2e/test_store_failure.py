"""The database fails under a live run, after its pod exists: the pod must not outlive it.

The state folder is a small tmpfs that the test fills once the pod exists (a real full
file system: SQLite answers "database or disk is full"), or the test holds the database's
write lock for longer than thinnka's timeout ("database is locked"). Runpod holds back
the create's answer for a moment, so the pod exists before thinnka could record its id:
only thinnka's memory knows it. thinnka must terminate it, say so in one line (exit 1,
no traceback), and ``recover`` must later record why the run stopped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.runpod_world import in_ci
from tests.plugins.thinnka_world import World
from tests.world.standin_trainer import (  # noqa: F401 - fixtures
    standin_run,
    standin_venv_fixture,
    standin_world_fixture,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``where``: a disk that really fills up."""
    where.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs here ({mounted.stderr.strip()}); needs root"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> None:
    """Take every free block of ``folder``'s file system."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        size = 1 << 20
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                size //= 2  # what is left, in smaller and smaller pieces
    finally:
        os.close(fd)


def wait_for(what: str, check: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("fault", ["disk_full", "locked"])
def test_the_database_fails_after_the_pod_exists_the_pod_is_terminated_and_recover_says_why(
    standin_world: World, tmp_path: Path, fault: str
) -> None:
    world = standin_world
    with small_tmpfs(tmp_path / "state", "16m") as state:
        world.write_dotenv(THINNKA_STATE_DIR=str(state))
        world.runpod.inject_faults(delay=3.0, match="POST /v2/pods", after=True)
        proc = world.spawn(*standin_run(world))
        assert proc.stdout is not None
        run_id = proc.stdout.readline().split()[1]
        wait_for("the pod", lambda: world.runpod.pods() != [], 120)
        (pod,) = world.runpod.pods()
        lock: sqlite3.Connection | None = None
        if fault == "disk_full":
            fill(state)
        else:  # another process writes and keeps the write lock, past thinnka's 30 s
            lock = sqlite3.connect(state / "thinnka.db", isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")
        try:
            _, err = proc.communicate(timeout=180)
        finally:
            if lock is not None:
                lock.rollback()
                lock.close()
        assert proc.returncode == 1, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        last = err.strip().splitlines()[-1]
        cause = "database or disk is full" if fault == "disk_full" else "database is locked"
        assert last.startswith("Error: ") and cause in last, err[-3000:]
        assert f"pod {pod.id} terminated" in last, last
        assert world.runpod.pods() == []  # gone before thinnka exited
        (entry,) = world.runpod.ledger()
        assert entry.terminated_by == "rest"  # by thinnka, not by a watchdog or reap

        (state / "filler").unlink(missing_ok=True)  # the disk has space again
        recovered = world.thinnka("recover", "--json", timeout=120)
        assert recovered.returncode == 0, recovered.stderr[-2000:]
        shown = world.show(run_id)
        assert (shown["state"], shown["outcome"]) == ("terminated", "failed"), shown["error"]
        message = shown["error"]["message"]
        assert "the database was unavailable" in message and cause in message, message
        assert pod.id in message and "cancelled on request" not in message.lower()
        assert len(world.runpod.ledger()) == 1
