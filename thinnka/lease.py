"""Who drives a run: lease owner ids, taking a lease (over from a dead holder), keeping it.

A process that drives a run holds its lease and renews it in the background
(``LeaseKeeper``), so ``resume`` and ``recover`` never drive a live run twice. A killed
process leaves its lease until expiry; on the same host its death is visible at once
(``owner_is_dead``), so nobody there has to wait for the expiry.

A holder that must stop because the database itself fails cannot record why there. It
leaves a *stop note* in the state folder instead (``runs/<run-id>/stopped.json``), whose
space is reserved when it takes the run, so that even a full disk takes it; ``recover``
reads it and records what happened.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from thinnka.errors import LeaseHeld

if TYPE_CHECKING:
    from thinnka.store import RunRecord, Store

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "LeaseKeeper",
    "host_name",
    "make_owner_id",
    "owner_host",
    "owner_is_dead",
    "read_stop_note",
    "reserve_stop_note",
    "take_lease",
    "take_lease_waiting",
    "write_stop_note",
]

logger = structlog.get_logger(__name__)

DEFAULT_LEASE_SECONDS = 60.0
_NOTE_BYTES = 2048  # reserved: a note of a few pod ids and one line fits many times


def host_name() -> str:
    """This host's name in lease owner ids: ``THINNKA_HOSTNAME``, else the hostname.

    Cut to 40 characters so that ``host:pid:suffix`` always fits the 64-character
    ``lease_owner`` column (PostgreSQL enforces the length; SQLite does not); no
    colon, which separates the parts.
    """
    name = os.environ.get("THINNKA_HOSTNAME", "").strip() or socket.gethostname()
    return name.replace(":", "-")[:40] or "localhost"


def make_owner_id() -> str:
    """A lease owner id that tells a person which process holds a run."""
    return f"{host_name()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def owner_host(owner: str) -> str:
    """The host part of a lease owner id (what ``show`` names as the holder)."""
    return owner.partition(":")[0]


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` was a process on this host that no longer exists.

    A killed ``thinnka run`` leaves its lease until expiry; ``resume`` on the
    same machine need not wait for it. Anything uncertain (another host, a
    pid now used by another process) counts as alive: then the lease expires.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != host_name() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take_lease(store: Store, run_id: str, owner: str, *, seconds: float) -> RunRecord:
    """The run's lease for ``owner``, taken over when its holder died on this host.

    Raises ``LeaseHeld`` naming the live holder. When two processes race for a dead
    holder's lease, the loser reads again, so that the error names the winner and not the
    dead process (and a lease the winner has given back already is free to take).
    """
    try:
        return store.acquire_lease(run_id, owner, seconds=seconds)
    except LeaseHeld as held:
        if not owner_is_dead(held.holder):
            raise
        if store.take_over_lease(run_id, held.holder, owner, seconds=seconds):
            return store.get(run_id)
    return store.acquire_lease(run_id, owner, seconds=seconds)


class LeaseKeeper:
    """Renews the lease in the background; notices when it was lost."""

    def __init__(self, store: Store, run_id: str, owner: str, seconds: float) -> None:
        self._store, self._run_id, self._owner, self._seconds = store, run_id, owner, seconds
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._loop, name=f"lease-{run_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                if not self._store.renew_lease(self._run_id, self._owner, seconds=self._seconds):
                    self.lost = True
                    return
            except Exception:  # a locked database now and then: try again next beat
                logger.warning("lease renewal failed; retrying", run_id=self._run_id)


def _note_path(state_dir: Path, run_id: str) -> Path:
    return state_dir / "runs" / run_id / "stopped.json"


def reserve_stop_note(state_dir: Path, run_id: str) -> None:
    """Blank the run's stop note and reserve its space (a note of an earlier holder is
    read before a run is taken, by ``recover``). Best effort: a disk full already means
    there is no space to reserve, and the run goes on without."""
    path = _note_path(state_dir, run_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(b" " * _NOTE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        logger.warning("could not reserve the stop note", run_id=run_id, error=str(exc))


def write_stop_note(state_dir: Path, run_id: str, owner: str, **facts: Any) -> bool:
    """Say why this holder stopped, over the reserved space (a full disk still takes it:
    no new block is needed). False when even that failed."""
    note = {"run_id": run_id, "owner": owner, "at": dt.datetime.now(dt.UTC).isoformat()}
    data = json.dumps({**note, **facts}).encode()
    path = _note_path(state_dir, run_id)
    try:
        with open(path, "r+b" if path.exists() else "wb") as handle:
            handle.write(data.ljust(_NOTE_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        logger.warning("could not write the stop note", run_id=run_id, error=str(exc))
        return False
    return True


def read_stop_note(state_dir: Path, run_id: str) -> dict[str, Any] | None:
    """The note a holder of ``run_id`` left when it stopped, or None."""
    with contextlib.suppress(OSError, ValueError):
        text = _note_path(state_dir, run_id).read_text().strip()
        note = json.loads(text) if text else None
        if isinstance(note, dict) and note.get("run_id") == run_id:
            return note
    return None


def take_lease_waiting(
    store: Store,
    run_id: str,
    owner: str,
    *,
    seconds: float,
    wait: bool,
    say: Callable[[str], None],
) -> RunRecord:
    """``take_lease``; with ``wait`` (``resume``), a holder on another host, whose
    processes this one cannot see, is first given until its lease expires.

    Only its lease tells: wait (at most one default lease period) until it expires, then
    take it. A live holder renews it meanwhile, and then the second attempt raises
    ``LeaseHeld`` like the first. A holder on this host is alive (its lease is renewed
    for as long as it lives): ``LeaseHeld`` at once.
    """
    try:
        return take_lease(store, run_id, owner, seconds=seconds)
    except LeaseHeld as held:
        if not wait or owner_host(held.holder) == host_name():
            raise
        expires = store.get(run_id).lease_expires_at
        if expires is not None:
            remaining = (expires - dt.datetime.now(dt.UTC)).total_seconds()
            if remaining > max(seconds, DEFAULT_LEASE_SECONDS) + 5:
                raise  # not a lease this thinnka would have written: do not sit on it
            say(
                f"Run {run_id} is held by {held.holder} on another host; waiting "
                f"{max(remaining, 0):.0f} s for its lease to expire."
            )
            time.sleep(max(remaining, 0) + 0.2)
        return store.acquire_lease(run_id, owner, seconds=seconds)
