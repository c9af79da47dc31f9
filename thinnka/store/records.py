"""The records that cross the boundary out of ``thinnka.store``: a run and one of its events.

Frozen dataclasses built from rows (``from_row``), so nothing above the store holds an
ORM object or a session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from thinnka.machine import Outcome, RunState
from thinnka.options import RunOptions
from thinnka.records import RemoteFacts
from thinnka.store.models import RunRow, utcnow

__all__ = ["EventRecord", "RunRecord"]


@dataclass(frozen=True)
class EventRecord:
    id: int
    run_id: str
    at: dt.datetime
    kind: str
    from_state: str | None
    to_state: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "from": self.from_state,
            "to": self.to_state,
            "message": self.message,
        }


@dataclass(frozen=True)
class RunRecord:
    """A run as stored; what crosses the boundary out of ``thinnka.store``."""

    id: str
    state: RunState
    outcome: Outcome | None
    options: RunOptions
    repo_id: str
    hub_model_id: str | None
    plan: dict[str, Any] | None
    pod_name: str | None
    pod_id: str | None
    gpu_type: str | None
    gpu_count: int | None
    cost_per_hr: float | None
    cost_usd: float
    pod_started_at: dt.datetime | None
    ssh_host: str | None
    ssh_port: int | None
    host_key: str | None
    remote: RemoteFacts
    error_message: str | None
    error_reason: str | None
    cancel_requested: bool
    lease_owner: str | None
    lease_expires_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    ended_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: RunRow) -> RunRecord:
        return cls(
            id=row.id,
            state=RunState(row.state),
            outcome=Outcome(row.outcome) if row.outcome else None,
            options=RunOptions.from_json(row.options),
            repo_id=row.repo_id,
            hub_model_id=row.hub_model_id,
            plan=row.plan,
            pod_name=row.pod_name,
            pod_id=row.pod_id,
            gpu_type=row.gpu_type,
            gpu_count=row.gpu_count,
            cost_per_hr=row.cost_per_hr,
            cost_usd=row.cost_usd or 0.0,
            pod_started_at=row.pod_started_at,
            ssh_host=row.ssh_host,
            ssh_port=row.ssh_port,
            host_key=row.host_key,
            remote=RemoteFacts.from_json(row.remote),
            error_message=row.error_message,
            error_reason=row.error_reason,
            cancel_requested=bool(row.cancel_requested),
            lease_owner=row.lease_owner,
            lease_expires_at=row.lease_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            ended_at=row.ended_at,
        )

    def lease_live(self, now: dt.datetime | None = None) -> bool:
        if self.lease_owner is None or self.lease_expires_at is None:
            return False
        return self.lease_expires_at > (now or utcnow())
