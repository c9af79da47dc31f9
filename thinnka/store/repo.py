"""Run records and the guarded writes that move them.

Every state change is a compare-and-set: ``UPDATE runs SET state=:dest ...
WHERE id=:id AND state=:source AND lease_owner=:owner`` plus its event row in
the same transaction. A write that matches no row raises ``StateConflict``
naming what it found instead; nothing is silently overwritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from thinnka.errors import LeaseHeld, RefusedChoice, RunNotFound, StateConflict, ThinnkaError
from thinnka.machine import Outcome, RunState
from thinnka.options import RunOptions
from thinnka.store.db import is_read_only
from thinnka.store.metric_table import MetricsTable
from thinnka.store.models import MetaRow, RunEventRow, RunRow, utcnow
from thinnka.store.outbox import OutboxTable, enqueue
from thinnka.store.records import EventRecord, RemoteFacts, RunRecord
from thinnka.store.score_table import ScoresTable

__all__ = ["EventRecord", "RunRecord", "Store"]

# Columns a step may record besides the state; state, outcome and leases move
# only through their own guarded methods.
FACT_COLUMNS = frozenset(
    {
        "hub_model_id", "plan", "pod_name", "pod_id", "gpu_type", "gpu_count", "cost_per_hr",
        "cost_usd", "pod_started_at", "ssh_host", "ssh_port", "host_key", "remote",
        "error_message", "error_reason", "cluster_id", "cluster_nodes",
    }
)  # fmt: skip

_ID_ALPHABET = "0123456789abcdefghjkmnpqrstuvwxyz"  # no i, l, o: easy to read aloud


class Store:
    """All reads and writes of runs; one short transaction per call."""

    def __init__(self, engine: Engine, *, secrets: list[str] | None = None) -> None:
        self.engine = engine
        self.read_only = is_read_only(engine)  # opened for a command that only reads
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # Events to deliver (webhook, Discord); scrubbed of ``secrets`` when written.
        self.outbox = OutboxTable(self._sessions, secrets or [])
        self.metrics = MetricsTable(self._sessions)
        self.scores = ScoresTable(self._sessions)

    # ------------------------------------------------------------ installation
    def known_installation_id(self) -> str | None:
        """The installation id if one was made (reading only)."""
        with self._sessions.begin() as session:
            row = session.get(MetaRow, "installation_id")
            return row.value if row is not None else None

    def installation_id(self) -> str:
        """The id pods carry as THINNKA_OWNER; made once per database."""
        known = self.known_installation_id()
        if known is not None:
            return known
        candidate = "inst-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
        try:
            with self._sessions.begin() as session:
                session.add(MetaRow(key="installation_id", value=candidate))
        except IntegrityError:
            pass  # another process made it first; theirs wins
        with self._sessions.begin() as session:
            return session.get(MetaRow, "installation_id").value  # type: ignore[union-attr]

    # ------------------------------------------------------------ create / read
    def create_run(
        self,
        options: RunOptions,
        *,
        owner: str | None = None,
        lease_seconds: float = 60.0,
        plan: dict[str, object] | None = None,
        hub_model_id: str | None = None,
    ) -> RunRecord:
        """Insert a run in ``created`` (optionally leased to ``owner`` at once), with
        the facts already checked before it existed (``plan``).

        With ``hub_model_id`` the run claims that repo: when another run that is not
        terminated pushes there, nothing is created and ``RefusedChoice`` names it (two
        runs pushing to one repo overwrite each other's files). The check and the insert
        are one transaction that concurrent creators pass one at a time.
        """
        now = utcnow()
        for _ in range(20):
            run_id = "r-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
            try:
                with self._sessions.begin() as session:
                    if hub_model_id is not None:
                        _serialize_claims(session, hub_model_id)
                    session.add(
                        RunRow(
                            id=run_id,
                            state=RunState.created.value,
                            options=options.to_json(),
                            plan=plan,
                            repo_id=options.repo_id,
                            hub_model_id=hub_model_id or options.hub_model_id,
                            remote={},
                            cost_usd=0.0,
                            cancel_requested=False,
                            lease_owner=owner,
                            lease_expires_at=(
                                now + dt.timedelta(seconds=lease_seconds) if owner else None
                            ),
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    session.flush()
                    if hub_model_id is not None:
                        _refuse_a_second_pusher(session, run_id, hub_model_id)
                    self._event(session, run_id, "created", None, RunState.created, "Run created.")
                    self._announce(session, run_id, "Run created.", None, "create")
                return self.get(run_id)
            except IntegrityError:
                continue  # id collision: draw again
        raise StateConflict("could not allocate a unique run id")

    def get(self, run_id: str) -> RunRecord:
        with self._sessions() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise RunNotFound(f"No run {run_id!r} in this database.")
            return RunRecord.from_row(row)

    def list_runs(self, *, include_terminated: bool = False) -> list[RunRecord]:
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id)
        if not include_terminated:
            query = query.where(RunRow.state != RunState.terminated.value)
        with self._sessions() as session:
            return [RunRecord.from_row(row) for row in session.scalars(query)]

    def events(self, run_id: str) -> list[EventRecord]:
        query = select(RunEventRow).where(RunEventRow.run_id == run_id).order_by(RunEventRow.id)
        with self._sessions() as session:
            return [
                EventRecord(e.id, e.run_id, e.at, e.kind, e.from_state, e.to_state, e.message)
                for e in session.scalars(query)
            ]

    def count_runs(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(func.count()).select_from(RunRow)) or 0)

    # ------------------------------------------------------------ guarded writes
    def transition(
        self,
        run_id: str,
        *,
        owner: str,
        source: RunState,
        dest: RunState,
        trigger: str,
        message: str = "",
        updates: Mapping[str, Any] | None = None,
        outcome: Outcome | None = None,
    ) -> RunRecord:
        """Move ``run_id`` from ``source`` to ``dest`` if it is there and ours."""
        values = self._facts(updates)
        now = utcnow()
        values.update(state=dest.value, updated_at=now)
        if outcome is not None:
            values["outcome"] = outcome.value
        if dest.is_final():
            values["ended_at"] = now
        with self._sessions.begin() as session:
            result = session.execute(
                update(RunRow)
                .where(
                    RunRow.id == run_id,
                    RunRow.state == source.value,
                    RunRow.lease_owner == owner,
                )
                .values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise self._conflict(session, run_id, f"move {source.value} → {dest.value}")
            self._event(session, run_id, trigger, source, dest, message or trigger)
            # The outbox event of this state, in the same transaction as the move.
            self._announce(session, run_id, message or trigger, source, trigger, values)
        return self.get(run_id)

    def record(self, run_id: str, *, owner: str, updates: Mapping[str, Any]) -> RunRecord:
        """Write step facts (pod id, offsets, ...) if ``owner`` still holds the lease;
        ``scores`` (evaluation ``Score`` list) go to their own table, in the same write."""
        scores = updates.get("scores")
        values = self._facts({k: v for k, v in updates.items() if k != "scores"})
        values["updated_at"] = utcnow()
        with self._sessions.begin() as session:
            result = session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.lease_owner == owner)
                .values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise self._conflict(session, run_id, "record facts")
            if scores is not None:
                self.scores.write(session, run_id, scores)
        return self.get(run_id)

    def add_event(self, run_id: str, kind: str, message: str) -> None:
        with self._sessions.begin() as session:
            self._event(session, run_id, kind, None, None, message)

    def request_cancel(self, run_id: str) -> RunRecord:
        with self._sessions.begin() as session:
            result = session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.state != RunState.terminated.value)
                .values(cancel_requested=True, updated_at=utcnow())
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                self._event(session, run_id, "cancel_requested", None, None, "Cancel requested.")
        return self.get(run_id)

    # ------------------------------------------------------------ leases
    def acquire_lease(self, run_id: str, owner: str, *, seconds: float) -> RunRecord:
        """Take the run's lease if it is free, expired or already ours."""
        now = utcnow()
        with self._sessions.begin() as session:
            result = session.execute(
                update(RunRow)
                .where(
                    RunRow.id == run_id,
                    or_(
                        RunRow.lease_owner.is_(None),
                        RunRow.lease_owner == owner,
                        RunRow.lease_expires_at.is_(None),
                        RunRow.lease_expires_at < now,
                    ),
                )
                .values(lease_owner=owner, lease_expires_at=now + dt.timedelta(seconds=seconds))
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                row = session.get(RunRow, run_id)
                if row is None:
                    raise RunNotFound(f"No run {run_id!r} in this database.")
                holder = row.lease_owner or "?"
                until = row.lease_expires_at.isoformat() if row.lease_expires_at else "?"
                raise LeaseHeld(
                    f"Run {run_id} is being driven by {holder} (lease until {until}).",
                    holder=holder,
                )
        return self.get(run_id)

    def take_over_lease(self, run_id: str, dead_owner: str, owner: str, *, seconds: float) -> bool:
        """Take a lease from an owner known to be dead; false if it changed meanwhile."""
        expires = utcnow() + dt.timedelta(seconds=seconds)
        with self._sessions.begin() as session:
            result = session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.lease_owner == dead_owner)
                .values(lease_owner=owner, lease_expires_at=expires)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                self._event(
                    session, run_id, "lease_taken", None, None,
                    f"{owner} took the lease of {dead_owner}, whose process is gone.",
                )  # fmt: skip
            rowcount: int = result.rowcount  # type: ignore[attr-defined]
            return rowcount == 1

    def renew_lease(self, run_id: str, owner: str, *, seconds: float) -> bool:
        expires = utcnow() + dt.timedelta(seconds=seconds)
        with self._sessions.begin() as session:
            result = session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.lease_owner == owner)
                .values(lease_expires_at=expires)
            )
            rowcount: int = result.rowcount  # type: ignore[attr-defined]
            return rowcount == 1

    def release_lease(self, run_id: str, owner: str) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )

    def runs_needing_recovery(self) -> list[RunRecord]:
        """Runs not terminated whose lease is free or expired."""
        now = utcnow()
        query = select(RunRow).where(
            RunRow.state != RunState.terminated.value,
            or_(RunRow.lease_expires_at.is_(None), RunRow.lease_expires_at < now),
        )
        with self._sessions() as session:
            return [RunRecord.from_row(row) for row in session.scalars(query)]

    # ------------------------------------------------------------ helpers
    def _facts(self, updates: Mapping[str, Any] | None) -> dict[str, Any]:
        values = dict(updates or {})
        unknown = set(values) - FACT_COLUMNS
        if unknown:
            raise ValueError(f"not a recordable run fact: {sorted(unknown)}")
        if isinstance(values.get("remote"), RemoteFacts):
            values["remote"] = values["remote"].to_json()
        return values

    def _event(
        self,
        session: Session,
        run_id: str,
        kind: str,
        source: RunState | None,
        dest: RunState | None,
        message: str,
    ) -> None:
        session.execute(
            insert(RunEventRow).values(
                run_id=run_id,
                at=utcnow(),
                kind=kind,
                from_state=source.value if source else None,
                to_state=dest.value if dest else None,
                message=message,
            )
        )

    def _announce(
        self,
        session: Session,
        run_id: str,
        message: str,
        source: RunState | None,
        trigger: str,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        extra: dict[str, Any] = {"from_state": source.value if source else None, "trigger": trigger}
        if values and values.get("error_reason"):
            extra["reason"] = values["error_reason"]
        enqueue(session, run_id, "state", message, extra=extra, secrets=self.outbox.secrets)

    def _conflict(self, session: Session, run_id: str, what: str) -> ThinnkaError:
        row = session.get(RunRow, run_id)
        if row is None:
            return RunNotFound(f"No run {run_id!r} in this database.")
        return StateConflict(
            f"Could not {what} for run {run_id}: it is {row.state} "
            f"and its lease is held by {row.lease_owner or 'nobody'}."
        )


def _serialize_claims(session: Session, hub_model_id: str) -> None:
    """Make concurrent creators claiming ``hub_model_id`` pass one at a time.

    PostgreSQL: a transaction-scoped advisory lock on the repo's name (read committed would
    let two inserts miss each other). SQLite needs nothing: the insert comes before the
    check, and SQLite lets one writer at a time in, so the second sees the first's row.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"thinnka-repo:{hub_model_id}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)  # advisory keys are signed 64-bit
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _refuse_a_second_pusher(session: Session, run_id: str, hub_model_id: str) -> None:
    """``RefusedChoice`` (rolling the insert back) when another live run pushes there."""
    other = session.execute(
        select(RunRow.id, RunRow.state)
        .where(
            RunRow.hub_model_id == hub_model_id,
            RunRow.state != RunState.terminated.value,
            RunRow.id != run_id,
        )
        .order_by(RunRow.created_at)
        .limit(1)
    ).first()
    if other is None:
        return
    raise RefusedChoice(
        f"Run {other.id} ({other.state}) already pushes to {hub_model_id}; two runs pushing "
        "to one repo overwrite each other's files. Give this run its own --hub-model-id, or "
        f"wait for {other.id} to end (`thinnka cancel {other.id}` stops it).",
        reason="repo_busy",
    )
