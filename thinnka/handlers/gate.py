"""created → gated: the model is readable with this token, and the token may push."""

from __future__ import annotations

from typing import ClassVar

from thinnka.planning.facts import GateFacts
from thinnka.preflight import check_gate
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord

__all__ = ["GateHandler"]


class GateHandler:
    trigger: ClassVar[str] = "check_gate"

    def timeout_s(self, run: RunRecord) -> float:
        return 300.0

    def run(self, ctx: StepContext) -> StepResult:
        kept = (ctx.run.plan or {}).get("gate")
        # `run` asked the Hub moments before it created the row (to refuse impossible
        # choices with nothing created): keep those facts rather than asking twice.
        if kept:
            gate = GateFacts.from_json(kept)
        else:
            gate = check_gate(ctx.services, ctx.run.options, require_write=True)
        for warning in gate.warnings:
            ctx.output.event("model_checked", warning)
        ctx.output.event(
            "model_checked", f"{gate.repo_id} is readable; will push to {gate.hub_model_id}."
        )
        plan = dict(ctx.run.plan or {})
        plan["gate"] = gate.to_json()
        return StepResult(
            message=f"Model readable; token may write {gate.hub_model_id}.",
            updates={"plan": plan, "hub_model_id": gate.hub_model_id},
        )
