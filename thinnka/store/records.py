"""The records that cross the boundary out of ``thinnka.store``: a run, its facts, its events.

Frozen dataclasses built from rows (``from_row``), so nothing above the store holds an
ORM object or a session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any

from thinnka.machine import Outcome, RunState
from thinnka.options import RunOptions
from thinnka.store.models import RunRow, utcnow
from thinnka.store.restart_facts import RestartFacts

__all__ = ["EventRecord", "LogPosition", "RemoteFacts", "RunRecord", "TerminationFacts"]


@dataclass(frozen=True)
class LogPosition:
    """How far a job's remote log was read, and the local copy's size at that point."""

    offset: int = 0
    local: int | None = None

    def to_json(self) -> dict[str, int | None]:
        return {"offset": self.offset, "local": self.local}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogPosition:
        local = data.get("local")
        return cls(offset=int(data.get("offset") or 0), local=None if local is None else int(local))


@dataclass(frozen=True)
class TerminationFacts:
    """What the terminate step saw of the pod's own clock, recorded the moment it saw it.

    ``uptime_s`` is the API's uptime read at ``seen_at`` (right before the terminate
    call); ``confirmed_at`` is when a read first showed the pod gone. Cost comes from
    these, never from when a (possibly much later) cleanup happens to run.
    """

    seen_at: dt.datetime | None = None
    uptime_s: float | None = None
    confirmed_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.seen_at is not None:
            data["seen_at"] = self.seen_at.isoformat()
        if self.uptime_s is not None:
            data["uptime_s"] = self.uptime_s
        if self.confirmed_at is not None:
            data["confirmed_at"] = self.confirmed_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TerminationFacts:
        uptime = data.get("uptime_s")
        return cls(
            seen_at=_when(data.get("seen_at")),
            uptime_s=None if uptime is None else float(uptime),
            confirmed_at=_when(data.get("confirmed_at")),
        )


@dataclass(frozen=True)
class RemoteFacts:
    """A run's facts about its pod, stored as JSON in ``runs.remote``.

    Every field is optional: a row written before a step ran (or by an older
    thinnka) lacks its keys. Keys this version does not know are kept in
    ``extra`` and written back unchanged, so a newer writer's facts survive.
    """

    run_dir: str | None = None
    output_dir: str | None = None
    venv: str | None = None
    # The Hub's newest commit before training (None: the repo had none); the push
    # step wants one after it. Recorded with ``train_started_at``.
    hub_baseline: dt.datetime | None = None
    train_started_at: dt.datetime | None = None
    train_pid: int | None = None
    # The training saved its model but could not push it: the pod is kept until then, for a
    # push by hand (cleanup does not terminate it before; the pod's watchdog ends it then).
    push_hold_until: dt.datetime | None = None
    logs: dict[str, LogPosition] = field(default_factory=dict)
    termination: TerminationFacts = field(default_factory=TerminationFacts)
    # Pods lost under the training and the restarts on new pods (thinnka.handlers.restart).
    restarts: RestartFacts = field(default_factory=RestartFacts)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        for name in ("run_dir", "output_dir", "venv", "train_pid"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.train_started_at is not None:
            data["train_started_at"] = self.train_started_at.isoformat()
            data["hub_baseline"] = self.hub_baseline.isoformat() if self.hub_baseline else None
        if self.push_hold_until is not None:
            data["push_hold_until"] = self.push_hold_until.isoformat()
        if self.logs:
            data["logs"] = {name: pos.to_json() for name, pos in self.logs.items()}
        if termination := self.termination.to_json():
            data["termination"] = termination
        if restarts := self.restarts.to_json():
            data["restarts"] = restarts
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RemoteFacts:
        data = dict(data or {})
        known = {f.name for f in fields(cls)} - {"extra"}
        pid = data.get("train_pid")
        return cls(
            run_dir=data.get("run_dir"),
            output_dir=data.get("output_dir"),
            venv=data.get("venv"),
            hub_baseline=_when(data.get("hub_baseline")),
            train_started_at=_when(data.get("train_started_at")),
            push_hold_until=_when(data.get("push_hold_until")),
            train_pid=None if pid is None else int(pid),
            logs={
                name: LogPosition.from_json(pos or {})
                for name, pos in (data.get("logs") or {}).items()
            },
            termination=TerminationFacts.from_json(data.get("termination") or {}),
            restarts=RestartFacts.from_json(data.get("restarts")),
            extra={key: value for key, value in data.items() if key not in known},
        )


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


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
    # --nodes: the Instant Cluster's id and one entry per node (thinnka.pod.cluster.NodeFacts)
    cluster_id: str | None = None
    cluster_nodes: tuple[dict[str, Any], ...] = ()

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
            cluster_id=row.cluster_id,
            cluster_nodes=tuple(row.cluster_nodes or ()),
        )

    def lease_live(self, now: dt.datetime | None = None) -> bool:
        if self.lease_owner is None or self.lease_expires_at is None:
            return False
        return self.lease_expires_at > (now or utcnow())
