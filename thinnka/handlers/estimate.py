"""gated → estimated: memory per GPU, and the GPUs to try, from the live catalog."""

from __future__ import annotations

from typing import ClassVar

from thinnka.planning.facts import GateFacts
from thinnka.preflight import choose_candidates, memory_estimate, offer_json
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord

__all__ = ["EstimateHandler"]


class EstimateHandler:
    trigger: ClassVar[str] = "estimate"

    def timeout_s(self, run: RunRecord) -> float:
        return 120.0

    def run(self, ctx: StepContext) -> StepResult:
        options = ctx.run.options
        gate = GateFacts.from_json((ctx.run.plan or {})["gate"])
        need = memory_estimate(options, gate)
        choice = choose_candidates(ctx.services, options, gate, need)
        candidates = choice.candidates
        required = need.required_gb()
        ctx.output.event(
            "model_checked",
            f"Needs about {required:.1f} GB per GPU; candidates: "
            + ", ".join(c.display_name for c in candidates[:4]),
        )
        plan = dict(ctx.run.plan or {})
        plan["memory"] = {
            "required_gb": round(required, 3),
            "breakdown_gb": dict(need.breakdown("GB")),
        }
        plan["candidates"] = [offer_json(offer) for offer in candidates]
        if options.multi_node:  # each candidate is one node's GPUs, rented N times
            plan["cluster"] = {"nodes": options.nodes, "gpus_per_node": options.gpu_count}
        return StepResult(
            message=f"Needs {required:.1f} GB per GPU; first choice {candidates[0].id}.",
            updates={"plan": plan},
        )
