"""The database tables, as typed SQLAlchemy 2 models.

ORM rows stay inside ``thinnka.store``; everything above it gets ``RunRecord``
and ``EventRecord`` dataclasses (see ``thinnka.store.records``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base", "MetaRow", "MetricRow", "OutboxDeliveryRow", "OutboxEventRow", "RunEventRow", "RunRow",
    "ScoreRow", "UTCDateTime", "utcnow",
]  # fmt: skip

# Named constraints, so SQLite batch migrations can alter them later.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zones; storing naive UTC keeps comparisons in SQL
    (lease expiry) correct as plain text comparisons.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class MetaRow(Base):
    """Key/value facts about this database, such as the installation id."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))
    # Every option as given (RunOptions.to_json), so resume needs nothing else.
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    repo_id: Mapped[str] = mapped_column(String(200))
    hub_model_id: Mapped[str | None] = mapped_column(String(200))
    # What the gate/estimate steps decided: memory breakdown, candidates, model facts.
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    pod_name: Mapped[str | None] = mapped_column(String(200))
    pod_id: Mapped[str | None] = mapped_column(String(64), index=True)
    gpu_type: Mapped[str | None] = mapped_column(String(100))  # Runpod's type id, not its name
    gpu_count: Mapped[int | None] = mapped_column(Integer)
    cost_per_hr: Mapped[float | None] = mapped_column(Float)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    pod_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ssh_host: Mapped[str | None] = mapped_column(String(255))
    ssh_port: Mapped[int | None] = mapped_column(Integer)
    host_key: Mapped[str | None] = mapped_column(Text)
    # --nodes: the Instant Cluster and its nodes (rank 0 is also pod_id/ssh_*/host_key).
    cluster_id: Mapped[str | None] = mapped_column(String(64), index=True)
    cluster_nodes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # Remote facts: paths, remote pid, log offsets, training start time.
    remote: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_reason: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RunEventRow(Base):
    """Append-only: one row per transition and per notable event."""

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run_id_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")


class OutboxEventRow(Base):
    """An event to deliver, written before any delivery (in the transaction of its change).

    ``payload`` is the webhook JSON exactly as it will be sent; ``id`` orders a
    run's events, ``event_id`` is what receivers de-duplicate on.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_run_id_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    event: Mapped[str] = mapped_column(String(48))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class OutboxDeliveryRow(Base):
    """How delivering one event to one sink went; no row yet means not tried."""

    __tablename__ = "outbox_deliveries"
    __table_args__ = (Index("ix_outbox_deliveries_run_id_sink", "run_id", "sink"),)

    event_pk: Mapped[int] = mapped_column(
        ForeignKey("outbox_events.id", ondelete="CASCADE"), primary_key=True
    )
    sink: Mapped[str] = mapped_column(String(16), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MetricRow(Base):
    """One logged training metric; ``log_end`` is the byte in the local log copy just
    after the line it came from, so re-reading the same bytes adds nothing."""

    __tablename__ = "run_metrics"
    __table_args__ = (
        UniqueConstraint("run_id", "log_end", "name", name="uq_run_metrics_run_id_log_end_name"),
        Index("ix_run_metrics_run_id_step", "run_id", "step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(96))
    value: Mapped[float] = mapped_column(Float)
    log_end: Mapped[int] = mapped_column(Integer)


class ScoreRow(Base):
    """One evaluation score of a run: a metric on its eval split, before and after training."""

    __tablename__ = "run_scores"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_run_scores_run_id_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(96))
    before: Mapped[float | None] = mapped_column(Float)
    after: Mapped[float | None] = mapped_column(Float)
    split: Mapped[str] = mapped_column(Text, default="")
    rows: Mapped[int | None] = mapped_column(Integer)
