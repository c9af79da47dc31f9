"""Records shared across layers: what the runner, handlers, planner and notify pass around.

A neutral home, so that ``planner`` and ``remote`` (and ``notify`` and the
handlers) can all use these without importing each other. Everything here is
plain data plus its JSON form; nothing does I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from thinnka.planning.gpus import GpuOffer
    from thinnka.planning.vram import ModelFacts
    from thinnka.rendering import ModelContext

__all__ = ["GateFacts", "LogPosition", "Output", "PlanCandidate", "RemoteFacts", "TerminationFacts"]


class Output(Protocol):
    """Where a step reports to the person watching (terminal, webhook, Discord)."""

    def event(self, name: str, message: str, **fields: Any) -> None: ...

    def line(self, stage: str, text: str) -> None: ...

    def progress(self, stage: str, done: int, total: int, text: str) -> None:
        """Optional: the trainer's step count (parsed from its progress bar)."""


@dataclass(frozen=True)
class GateFacts:
    """What the gate learned; JSON-safe, stored in ``runs.plan["gate"]``."""

    repo_id: str
    hub_model_id: str
    user: str | None
    gated: str | bool
    has_chat_template: bool
    system_role_supported: bool
    transformers_version: str | None
    model_type: str | None
    files: list[tuple[str, int]]
    safetensors_total: int | None
    safetensors_parameters: dict[str, int] | None
    config: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GateFacts:
        data = dict(data)
        data["files"] = [tuple(item) for item in data.get("files", [])]
        return cls(**data)

    def model_context(self) -> ModelContext:
        """What the renderer needs to know about the model."""
        from thinnka.rendering import ModelContext

        return ModelContext(
            hub_model_id=self.hub_model_id,
            has_chat_template=self.has_chat_template,
            system_role_supported=self.system_role_supported,
            transformers_version=self.transformers_version,
            model_type=self.model_type,
        )

    def model_facts(self) -> ModelFacts:
        from thinnka.planning.vram import ModelFacts

        return ModelFacts.from_hub(
            self.safetensors_total,
            self.safetensors_parameters,
            [(name, size) for name, size in self.files],
            self.config,
        )


@dataclass(frozen=True)
class PlanCandidate:
    """A GPU type the estimate step chose to try, as stored in ``runs.plan["candidates"]``."""

    id: str
    display_name: str
    memory_gb: float
    gpu_count: int
    price_per_hour: float | None
    stock: str | None
    # Clouds to try, in order (--cloud-type ALL on REST v2); empty: the option itself.
    clouds: tuple[str, ...] = ()

    @classmethod
    def from_offer(cls, offer: GpuOffer) -> PlanCandidate:
        return cls(
            id=offer.id,
            display_name=offer.display_name,
            memory_gb=offer.memory_gb,
            gpu_count=offer.gpu_count,
            price_per_hour=offer.price_per_hour,
            stock=offer.stock,
            clouds=tuple(offer.clouds),
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "clouds": list(self.clouds)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanCandidate:
        return cls(
            id=data["id"],
            display_name=data.get("display_name") or data["id"],
            memory_gb=float(data.get("memory_gb") or 0.0),
            gpu_count=int(data.get("gpu_count") or 1),
            price_per_hour=data.get("price_per_hour"),
            stock=data.get("stock"),
            clouds=tuple(data.get("clouds") or ()),
        )


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
    logs: dict[str, LogPosition] = field(default_factory=dict)
    termination: TerminationFacts = field(default_factory=TerminationFacts)
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
        if self.logs:
            data["logs"] = {name: pos.to_json() for name, pos in self.logs.items()}
        if termination := self.termination.to_json():
            data["termination"] = termination
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
            train_pid=None if pid is None else int(pid),
            logs={
                name: LogPosition.from_json(pos or {})
                for name, pos in (data.get("logs") or {}).items()
            },
            termination=TerminationFacts.from_json(data.get("termination") or {}),
            extra={key: value for key, value in data.items() if key not in known},
        )


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None
