"""gated → estimated: memory per GPU, and the GPUs to try, from the live catalog (the read
``run`` made just before it created the row, when there was one)."""

from __future__ import annotations

from typing import ClassVar

from thinnka.planning.facts import GateFacts, PlanCandidate
from thinnka.preflight import choose_candidates, kept_candidates, memory_estimate
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord
from thinnka.store.models import utcnow

__all__ = ["EstimateHandler"]


class EstimateHandler:
    trigger: ClassVar[str] = "estimate"

    def timeout_s(self, run: RunRecord) -> float:
        return 120.0

    def run(self, ctx: StepContext) -> StepResult:
        options = ctx.run.options
        plan = dict(ctx.run.plan or {})
        gate = GateFacts.from_json(plan["gate"])
        need = memory_estimate(options, gate)
        # `run` chose from the catalog moments before it created the row (to refuse
        # impossible choices with nothing created), with these options and this gate: keep
        # that choice rather than reading the catalog again, unless it has grown old.
        kept = kept_candidates(plan, utcnow())
        plan.pop("kept_choice", None)
        if kept is not None:
            candidates = kept
        else:
            choice = choose_candidates(ctx.services, options, gate, need)
            candidates = [PlanCandidate.from_offer(offer) for offer in choice.candidates]
        required = need.required_gb()
        ctx.output.event(
            "model_checked",
            f"Needs about {required:.1f} GB per GPU; candidates: "
            + ", ".join(c.display_name for c in candidates[:4]),
        )
        plan["memory"] = {
            "required_gb": round(required, 3),
            "breakdown_gb": dict(need.breakdown("GB")),
        }
        plan["candidates"] = [candidate.to_json() for candidate in candidates]
        if options.multi_node:  # each candidate is one node's GPUs, rented N times
            plan["cluster"] = {"nodes": options.nodes, "gpus_per_node": options.gpu_count}
        return StepResult(
            message=f"Needs {required:.1f} GB per GPU; first choice {candidates[0].id}.",
            updates={"plan": plan},
        )
