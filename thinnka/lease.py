"""Who drives a run: lease owner ids, taking a lease (over from a dead holder), keeping it.

A process that drives a run holds its lease and renews it in the background
(``LeaseKeeper``), so ``resume`` and ``recover`` never drive a live run twice. A killed
process leaves its lease until expiry; on the same host its death is visible at once
(``owner_is_dead``), so nobody there has to wait for the expiry.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from typing import TYPE_CHECKING

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
    "take_lease",
]

logger = structlog.get_logger(__name__)

DEFAULT_LEASE_SECONDS = 60.0


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
