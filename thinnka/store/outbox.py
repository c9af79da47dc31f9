"""The events outbox in the database: events written first, their delivery tracked per sink.

An event's row holds the webhook JSON exactly as it will be sent (secrets
already scrubbed), so a later process delivers the same bytes with the same
``event_id``. A delivery row per (event, sink) says how far delivery got; no
row means it was never tried. Plain SQLAlchemy Core, no dialect-only SQL.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from thinnka.errors import RunNotFound
from thinnka.store.models import OutboxDeliveryRow, OutboxEventRow, RunRow, utcnow

__all__ = ["PROJECT", "OutboxItem", "OutboxTable", "enqueue"]

PROJECT = "thinnka"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class OutboxItem:
    """One event still to deliver to one sink."""

    pk: int
    run_id: str
    event_id: str
    payload: dict[str, Any]
    attempts: int


def _scrub_payload(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, Mapping):
        return {key: _scrub_payload(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_payload(item, secrets) for item in value]
    return value


def cost_so_far(
    cost_usd: float | None,
    cost_per_hr: float | None,
    pod_started_at: dt.datetime | None,
    ended_at: dt.datetime | None,
    now: dt.datetime,
) -> float:
    """The recorded cost, or while a pod runs, its price times the time since it started."""
    recorded = cost_usd or 0.0
    if cost_per_hr and pod_started_at is not None and ended_at is None:
        hours = max(0.0, (now - pod_started_at) / dt.timedelta(hours=1))
        return max(recorded, cost_per_hr * hours)
    return recorded


def enqueue(
    session: Session,
    run_id: str,
    event: str,
    message: str,
    *,
    stage: str | None = None,
    extra: Mapping[str, Any] | None = None,
    secrets: Sequence[str] = (),
) -> str:
    """Add an event to the outbox inside ``session``'s transaction; returns its ``event_id``.

    The run's state and cost are read in the same transaction, after any
    change it made, so the payload says where the run is after the event.
    """
    row = session.execute(
        select(
            RunRow.state, RunRow.repo_id, RunRow.cost_usd, RunRow.cost_per_hr,
            RunRow.pod_started_at, RunRow.ended_at,
        ).where(RunRow.id == run_id)
    ).one_or_none()  # fmt: skip
    if row is None:
        raise RunNotFound(f"No run {run_id!r} in this database.")
    now = utcnow()
    event_id = uuid.uuid4().hex
    payload: dict[str, Any] = {
        "project": PROJECT,
        "event": event,
        "message": message,
        "timestamp": now.timestamp(),
        "stage": stage,
        "repo_id": row.repo_id,
        "run_id": run_id,
        "event_id": event_id,
        "state": row.state,
        "cost_usd": round(
            cost_so_far(row.cost_usd, row.cost_per_hr, row.pod_started_at, row.ended_at, now), 6
        ),
    }
    for key, value in (extra or {}).items():
        payload.setdefault(key, value)
    session.execute(
        insert(OutboxEventRow).values(
            run_id=run_id,
            event_id=event_id,
            event=event,
            created_at=now,
            payload=_scrub_payload(payload, secrets),
        )
    )
    return event_id


class OutboxTable:
    """Reads and writes of the outbox; one short transaction per call."""

    def __init__(self, sessions: sessionmaker[Session], secrets: Sequence[str] = ()) -> None:
        self._sessions = sessions
        self.secrets: list[str] = [s for s in secrets if s]

    def add(
        self,
        run_id: str,
        event: str,
        message: str,
        *,
        stage: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        with self._sessions.begin() as session:
            return enqueue(
                session, run_id, event, message, stage=stage, extra=extra, secrets=self.secrets
            )

    def payloads(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of the run, in order."""
        query = (
            select(OutboxEventRow.payload)
            .where(OutboxEventRow.run_id == run_id)
            .order_by(OutboxEventRow.id)
        )
        with self._sessions() as session:
            return [dict(payload) for payload in session.scalars(query)]

    def latest(self, run_id: str, event: str) -> dict[str, Any] | None:
        """The payload of the run's newest ``event`` (e.g. the latest progress)."""
        query = (
            select(OutboxEventRow.payload)
            .where(OutboxEventRow.run_id == run_id, OutboxEventRow.event == event)
            .order_by(OutboxEventRow.id.desc())
            .limit(1)
        )
        with self._sessions() as session:
            found = session.scalar(query)
        return dict(found) if found is not None else None

    def _undone(self, sink: str) -> Any:
        return and_(OutboxDeliveryRow.event_pk == OutboxEventRow.id, OutboxDeliveryRow.sink == sink)

    def pending(self, run_id: str, sink: str, *, limit: int = 50) -> list[OutboxItem]:
        """The run's events not yet delivered to (or given up on for) ``sink``, oldest first."""
        query = (
            select(OutboxEventRow, OutboxDeliveryRow.attempts)
            .outerjoin(OutboxDeliveryRow, self._undone(sink))
            .where(
                OutboxEventRow.run_id == run_id,
                or_(OutboxDeliveryRow.status.is_(None), OutboxDeliveryRow.status == PENDING),
            )
            .order_by(OutboxEventRow.id)
            .limit(limit)
        )
        with self._sessions() as session:
            return [
                OutboxItem(row.id, row.run_id, row.event_id, dict(row.payload), attempts or 0)
                for row, attempts in session.execute(query)
            ]

    def counts(self, run_id: str, sinks: Iterable[str]) -> dict[str, dict[str, int]]:
        """Per sink: how many of the run's events are pending, delivered, failed."""
        result: dict[str, dict[str, int]] = {}
        with self._sessions() as session:
            total = int(
                session.scalar(
                    select(func.count())
                    .select_from(OutboxEventRow)
                    .where(OutboxEventRow.run_id == run_id)
                )
                or 0
            )
            for sink in sinks:
                done = dict(
                    session.execute(
                        select(OutboxDeliveryRow.status, func.count())
                        .where(OutboxDeliveryRow.run_id == run_id, OutboxDeliveryRow.sink == sink)
                        .group_by(OutboxDeliveryRow.status)
                    ).all()
                )
                delivered, failed = int(done.get(DELIVERED, 0)), int(done.get(FAILED, 0))
                result[sink] = {
                    "pending": total - delivered - failed,
                    "delivered": delivered,
                    "failed": failed,
                }
        return result

    def runs_with_pending(self, sink: str) -> list[str]:
        query = (
            select(OutboxEventRow.run_id)
            .outerjoin(OutboxDeliveryRow, self._undone(sink))
            .where(or_(OutboxDeliveryRow.status.is_(None), OutboxDeliveryRow.status == PENDING))
            .group_by(OutboxEventRow.run_id)
        )
        with self._sessions() as session:
            return list(session.scalars(query))

    def mark(
        self, item: OutboxItem, sink: str, status: str, *, attempts: int, error: str | None = None
    ) -> None:
        """Record how delivering ``item`` to ``sink`` went (update, else insert)."""
        values = {
            "status": status,
            "attempts": attempts,
            "last_error": error,
            "updated_at": utcnow(),
        }
        for _ in range(2):
            with self._sessions.begin() as session:
                result = session.execute(
                    update(OutboxDeliveryRow)
                    .where(OutboxDeliveryRow.event_pk == item.pk, OutboxDeliveryRow.sink == sink)
                    .values(**values)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    return
            try:
                with self._sessions.begin() as session:
                    session.execute(
                        insert(OutboxDeliveryRow).values(
                            event_pk=item.pk, sink=sink, run_id=item.run_id, **values
                        )
                    )
                return
            except IntegrityError:
                continue  # another process inserted it meanwhile: update theirs
