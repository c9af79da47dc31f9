"""What a run remembers of its earlier pods: those lost under its training, and the restarts.

Stored inside ``runs.remote`` (key ``restarts``), so a run that never lost a pod carries
nothing and an older thinnka keeps the key untouched (``RemoteFacts.extra``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EarlierPod", "RestartFacts"]


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class EarlierPod:
    """A pod the run had before its current one, with what it cost (estimated: the pod was
    lost, so its uptime could not be read before it went)."""

    pod_id: str
    gpu_type: str | None
    cost_per_hr: float | None
    started_at: dt.datetime | None
    ended_at: dt.datetime
    cost_usd: float
    why: str

    def to_json(self) -> dict[str, Any]:
        return {
            "pod_id": self.pod_id,
            "gpu_type": self.gpu_type,
            "cost_per_hr": self.cost_per_hr,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat(),
            "cost_usd": self.cost_usd,
            "why": self.why,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EarlierPod:
        ended = _when(data.get("ended_at"))
        return cls(
            pod_id=str(data["pod_id"]),
            gpu_type=data.get("gpu_type"),
            cost_per_hr=data.get("cost_per_hr"),
            started_at=_when(data.get("started_at")),
            ended_at=ended or dt.datetime.min.replace(tzinfo=dt.UTC),
            cost_usd=float(data.get("cost_usd") or 0.0),
            why=str(data.get("why") or ""),
        )


@dataclass(frozen=True)
class RestartFacts:
    """``count`` restarts so far; ``from_scratch`` whether one had no checkpoint to start from
    (allowed once). ``step``/``commit`` name the checkpoint the current pod resumes from
    (``commit``: the Hub commit holding it; None: the network volume's own copy).
    ``pod_at`` is when the current pod was created (``runs.pod_started_at`` keeps the
    first pod's, from which --max-hours and --max-cost count for all pods together)."""

    count: int = 0
    from_scratch: bool = False
    step: int | None = None
    commit: str | None = None
    pod_at: dt.datetime | None = None
    pods: tuple[EarlierPod, ...] = field(default_factory=tuple)

    @property
    def earlier_cost(self) -> float:
        return round(sum(pod.cost_usd for pod in self.pods), 6)

    def to_json(self) -> dict[str, Any]:
        if self == RestartFacts():
            return {}
        return {
            "count": self.count,
            "from_scratch": self.from_scratch,
            "step": self.step,
            "commit": self.commit,
            "pod_at": self.pod_at.isoformat() if self.pod_at else None,
            "pods": [pod.to_json() for pod in self.pods],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RestartFacts:
        data = data or {}
        step = data.get("step")
        return cls(
            count=int(data.get("count") or 0),
            from_scratch=bool(data.get("from_scratch")),
            step=None if step is None else int(step),
            commit=data.get("commit"),
            pod_at=_when(data.get("pod_at")),
            pods=tuple(EarlierPod.from_json(p) for p in data.get("pods") or []),
        )
