"""What planning learns and decides about a run, as plain records (no I/O).

``GateFacts`` is what the gate step read from the Hub (stored in ``runs.plan["gate"]``),
``PlanCandidate`` a GPU type the estimate step chose to try, ``ModelContext`` the model facts
the recipe depends on, ``RemotePaths`` where the run's files live on the pod.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thinnka.planning.gpus import GpuOffer
    from thinnka.planning.model import ModelFacts

__all__ = ["GateFacts", "ModelContext", "PlanCandidate", "RemotePaths"]


@dataclass(frozen=True)
class ModelContext:
    """Facts the gate step read from the Hub about the model to train (``options.repo_id``)."""

    hub_model_id: str  # where the result is pushed (resolved: --hub-model-id or the default)
    has_chat_template: bool
    # False for Gemma 1/2-style templates that raise "System role not supported".
    system_role_supported: bool = True
    transformers_version: str | None = None  # from the model's config.json
    model_type: str | None = None


@dataclass(frozen=True)
class RemotePaths:
    """Where things live on the pod."""

    run_dir: str  # /workspace/thinnka/<run-id>: every file of Rendered.files goes here
    output_dir: str  # training output
    venv: str  # the trainer's venv
    hf_home: str  # /workspace/.cache/huggingface
    openr1_dir: str = "/opt/open-r1"


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
        return ModelContext(
            hub_model_id=self.hub_model_id,
            has_chat_template=self.has_chat_template,
            system_role_supported=self.system_role_supported,
            transformers_version=self.transformers_version,
            model_type=self.model_type,
        )

    def model_facts(self) -> ModelFacts:
        from thinnka.planning.model import ModelFacts

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
