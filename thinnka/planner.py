"""The checks and choices made before any money is spent.

Shared by the gate and estimate handlers and by ``thinnka plan``: the
handlers persist what these functions return (as JSON in ``runs.plan``), so
later steps and ``resume`` never need to ask the Hub again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from thinnka.clients.hub import HubModel
from thinnka.errors import AuthError, PreflightError
from thinnka.options import RunOptions
from thinnka.planning.gpus import GpuOffer, GpuVerdict, choose, explain
from thinnka.planning.vram import MemoryEstimate, ModelFacts, estimate, shape_for

__all__ = ["GateFacts", "Plan", "check_gate", "choose_gpus", "default_hub_model_id", "make_plan"]


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

    def model_facts(self) -> ModelFacts:
        return ModelFacts.from_hub(
            self.safetensors_total,
            self.safetensors_parameters,
            [(name, size) for name, size in self.files],
            self.config,
        )


def default_hub_model_id(user: str, options: RunOptions) -> str:
    """``<user>/<model name>-<grpo|sft>-thinnka``, as the original named it."""
    return f"{user}/{options.repo_id.split('/')[-1]}-{options.mode}-thinnka"


def check_gate(services: Any, options: RunOptions, *, require_write: bool = True) -> GateFacts:
    """Model readable with this token; token may write the target namespace.

    With ``require_write=False`` (``thinnka plan``) what cannot be checked
    without a token becomes a warning instead of an error.
    """
    hub = services.hub
    # Two independent Hub round trips: ask both at once.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gate") as pool:
        asked_token = pool.submit(hub.whoami)
        model: HubModel = hub.model(options.repo_id)
    warnings: list[str] = []
    user: str | None = None
    try:
        token = asked_token.result()
        user = token.user
    except AuthError as exc:
        if require_write:
            raise PreflightError(
                f"Cannot check write access: {exc.message}", reason="auth"
            ) from exc
        warnings.append("No usable HF token: write access to the target repo is not checked.")
        token = None
    hub_model_id = options.hub_model_id or default_hub_model_id(user or "<you>", options)
    namespace = hub_model_id.split("/")[0]
    if token is not None and not token.may_write(namespace):
        raise PreflightError(
            f"The HF token ({token.role}) cannot write to {namespace!r}; "
            f"{hub_model_id} could not be pushed. Use a token with write access.",
            reason="no_write_access",
        )
    if model.gated:
        warnings.append(f"{options.repo_id} is gated ({model.gated}); this token has access.")
    return GateFacts(
        repo_id=options.repo_id,
        hub_model_id=hub_model_id,
        user=user,
        gated=model.gated,
        has_chat_template=model.has_chat_template,
        system_role_supported=model.system_role_supported,
        transformers_version=model.transformers_version,
        model_type=model.model_type,
        files=[(name, size) for name, size in model.files],
        safetensors_total=model.safetensors_total,
        safetensors_parameters=model.safetensors_parameters,
        config=model.config,
        warnings=warnings,
    )


def memory_estimate(options: RunOptions, gate: GateFacts) -> MemoryEstimate:
    return estimate(gate.model_facts(), shape_for(options, options.trainer))


def choose_gpus(
    offers: list[GpuOffer], options: RunOptions, need: MemoryEstimate
) -> tuple[list[GpuOffer], list[GpuVerdict]]:
    verdicts = explain(
        offers,
        need.required_gb(),
        strategy=options.gpu_strategy,
        gpu_type=options.gpu_type,
        max_price=options.max_price,
    )
    candidates = choose(
        offers,
        need.required_gb(),
        strategy=options.gpu_strategy,
        gpu_type=options.gpu_type,
        max_price=options.max_price,
    )
    return candidates, verdicts


@dataclass
class Plan:
    """Everything ``thinnka plan`` shows."""

    options: RunOptions
    gate: GateFacts
    need: MemoryEstimate
    candidates: list[GpuOffer]
    verdicts: list[GpuVerdict]
    rendered: Any  # thinnka.rendering.Rendered
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        r = self.rendered
        return {
            "repo_id": self.options.repo_id,
            "hub_model_id": self.gate.hub_model_id,
            "mode": self.options.mode,
            "trainer": self.options.trainer,
            "gpu_count": self.options.gpu_count,
            "model": {
                "parameters": self.gate.model_facts().num_parameters,
                "gated": self.gate.gated,
                "has_chat_template": self.gate.has_chat_template,
                "transformers_version": self.gate.transformers_version,
            },
            "memory": {
                "required_gb": round(self.need.required_gb(), 2),
                "breakdown_gb": {k: round(v, 3) for k, v in self.need.breakdown("GB")},
            },
            "gpu": self.candidates[0].id if self.candidates else None,
            "candidates": [offer_json(offer) for offer in self.candidates],
            "skipped": [
                {"id": v.offer.id, "reason": v.reason} for v in self.verdicts if not v.kept
            ],
            "recipe": r.recipe,
            "accelerate": r.accelerate,
            "command": r.command,
            "transformers": {"spec": r.transformers_spec, "reason": r.transformers_reason},
            "notes": list(r.notes),
            "warnings": self.warnings,
            "limits": limits_json(self.options),
        }


def limits_json(options: RunOptions) -> dict[str, Any]:
    from thinnka.limits import limits_json as bounds

    return bounds(options)


def offer_json(offer: GpuOffer) -> dict[str, Any]:
    return {
        "id": offer.id,
        "display_name": offer.display_name,
        "memory_gb": offer.memory_gb,
        "gpu_count": offer.gpu_count,
        "price_per_hour": offer.price_per_hour,
        "stock": offer.stock,
    }


def make_plan(services: Any, options: RunOptions) -> Plan:
    """Gate, estimate, choose and render, without creating anything."""
    from thinnka.rendering import validate_overrides

    validate_overrides(options)
    gate = check_gate(services, options, require_write=False)
    need = memory_estimate(options, gate)
    offers = services.runpod.gpu_offers(options.gpu_count, options.cloud_type)
    candidates, verdicts = choose_gpus(offers, options, need)
    from thinnka.remote import remote_paths, render_for

    rendered = render_for(options, gate, remote_paths(services.settings, "<run-id>", options, gate))
    return Plan(options, gate, need, candidates, verdicts, rendered, list(gate.warnings))
