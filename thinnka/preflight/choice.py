"""What to rent: the memory a run needs per GPU and the GPU types (or Instant Clusters) that
hold it, from Runpod's catalog."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from thinnka.errors import ConfigError, PreflightError, RefusedChoice
from thinnka.options import RunOptions
from thinnka.options.run_options import CLUSTER_NODE_GPUS, MAX_NODES
from thinnka.planning.cluster import ClusterOffer, choose_cluster, nodes_needed
from thinnka.planning.facts import GateFacts, PlanCandidate
from thinnka.planning.gpus import GpuOffer, GpuVerdict, architecture, choose, explain
from thinnka.planning.stacks import stack_for
from thinnka.planning.vram import MemoryEstimate, estimate, shape_for

if TYPE_CHECKING:
    from thinnka.clients.runpod.clusters import RestClusters
    from thinnka.planning.training import TrainingPlan
    from thinnka.services import Services

__all__ = [
    "KEPT_CHOICE_S",
    "Choice",
    "choose_candidates",
    "choose_gpus",
    "cluster_api",
    "kept_candidates",
    "kept_choice_json",
    "memory_estimate",
    "offer_json",
    "training_plan",
]


def training_plan(options: RunOptions, gate: GateFacts) -> TrainingPlan:
    """The run's decisions (method, ZeRO, vLLM, processes, ...), made once from its options."""
    from thinnka.planning.training import plan_training

    return plan_training(options, gate.model_context())


def memory_estimate(
    options: RunOptions, gate: GateFacts, plan: TrainingPlan | None = None
) -> MemoryEstimate:
    """Per-GPU memory for the recipe the renderer writes (the same ``TrainingPlan``)."""
    plan = plan or training_plan(options, gate)
    return estimate(gate.model_facts(), shape_for(plan))


def choose_gpus(
    offers: list[GpuOffer], options: RunOptions, need: MemoryEstimate
) -> tuple[list[GpuOffer], list[GpuVerdict]]:
    """Candidates in order, and a verdict per offer; GPUs the stack cannot use are skipped."""
    support = stack_for(options.trainer).gpus
    verdicts = explain(
        offers,
        need.required_gb(),
        strategy=options.gpu_strategy,
        gpu_type=options.gpu_type,
        max_price=options.max_price,
        support=support,
    )
    candidates = choose(
        offers,
        need.required_gb(),
        strategy=options.gpu_strategy,
        gpu_type=options.gpu_type,
        max_price=options.max_price,
        support=support,
    )
    return candidates, verdicts


@dataclass(frozen=True)
class Choice:
    """The GPU types to try, in order, with a verdict per offer; with ``--nodes``, the
    Instant Clusters they make (``candidates`` are then their per-node offers)."""

    candidates: list[GpuOffer]
    verdicts: list[GpuVerdict]
    clusters: list[ClusterOffer] = field(default_factory=list)


def cluster_api(services: Services) -> RestClusters:
    """The cluster calls; only REST v2 has them (``--nodes`` with GraphQL is refused)."""
    from thinnka.clients.runpod.clusters import RestClusters
    from thinnka.clients.runpod.rest import RestRunpod

    api = services.runpod
    if not isinstance(api, RestRunpod):
        raise ConfigError("--nodes needs Runpod's REST v2 API: unset THINNKA_RUNPOD_API=graphql.")
    return RestClusters(api)


def choose_candidates(
    services: Services,
    options: RunOptions,
    gate: GateFacts,
    need: MemoryEstimate,
    offers: list[GpuOffer] | None = None,
) -> Choice:
    """What to rent: pods of ``--gpu-count`` GPUs, or (``--nodes``) Instant Clusters.

    A model that fits no single pod is refused with the number of nodes that would hold it,
    when some cluster could. ``offers``: the pod catalog, when the caller asked it already.
    """
    if options.multi_node:
        offers = cluster_api(services).cluster_offers(options.gpu_count)
        clusters, verdicts = choose_cluster(
            offers,
            need.required_gb(),
            options.nodes,
            strategy=options.gpu_strategy,
            gpu_type=options.gpu_type,
            max_price=options.max_price,
            support=stack_for(options.trainer).gpus,
        )
        return Choice([c.gpu for c in clusters], verdicts, clusters)
    if offers is None:  # not asked already (beside the gate)
        offers = services.runpod.gpu_offers(options.gpu_count, options.cloud_type)
    try:
        candidates, verdicts = choose_gpus(offers, options, need)
    except RefusedChoice:
        raise
    except PreflightError as exc:
        hint = _nodes_hint(options, gate, offers, need) if exc.reason == "no_gpu_fits" else None
        if hint is None:
            raise
        raise PreflightError(f"{exc.message} {hint}", reason=exc.reason) from None
    return Choice(candidates, verdicts)


def _nodes_hint(
    options: RunOptions, gate: GateFacts, offers: list[GpuOffer], need: MemoryEstimate
) -> str | None:
    """How many Instant Cluster nodes would hold a run no pod can, or None."""
    # Runpod's clusters are data-center NVIDIA cards (A100, H100, H200, B200).
    usable = [o for o in offers if architecture(o) in ("ampere", "hopper", "blackwell")]
    if not usable or any(o.memory_gb >= need.required_gb() for o in usable):
        return None  # memory is not what stopped it
    largest = max(usable, key=lambda o: o.memory_gb)

    summaries: dict[int, str] = {}

    def required(nodes: int) -> float | None:
        try:
            wider = replace(options, nodes=nodes, gpu_count=CLUSTER_NODE_GPUS)
            plan = training_plan(wider, gate)
        except ConfigError:
            return None  # this run cannot train across nodes (e.g. vLLM server mode)
        summaries[nodes] = plan.summary
        return memory_estimate(wider, gate, plan).required_gb()

    found = nodes_needed(required, largest.memory_gb, MAX_NODES)
    if found is None:
        return None
    nodes, gb = found
    return (
        f"An Instant Cluster would: --nodes {nodes} --gpu-count {CLUSTER_NODE_GPUS} needs "
        f"{gb:.1f} GB per GPU ({largest.display_name} has {largest.memory_gb:g} GB) for "
        f"{summaries[nodes]}."
    )


def offer_json(offer: GpuOffer) -> dict[str, Any]:
    return PlanCandidate.from_offer(offer).to_json()


# How long the choice ``run`` made from the catalog just before it created the row stands in
# for the estimate step's own read. That step follows within a second; a run resumed later
# (its process died in between) reads the catalog again, as prices and stock move.
KEPT_CHOICE_S = 600.0


def kept_choice_json(choice: Choice, asked_at: dt.datetime) -> dict[str, Any]:
    """The choice as ``run`` keeps it in ``runs.plan["kept_choice"]`` for the estimate step."""
    return {
        "candidates": [offer_json(offer) for offer in choice.candidates],
        "asked_at": asked_at.isoformat(),
    }


def kept_candidates(plan: Mapping[str, Any], now: dt.datetime) -> list[PlanCandidate] | None:
    """The candidates kept in ``plan`` when they were chosen less than ``KEPT_CHOICE_S`` ago
    from the catalog (None: none kept, or too old: ask the catalog again)."""
    kept = plan.get("kept_choice")
    if not kept or not kept.get("candidates"):
        return None
    asked_at = dt.datetime.fromisoformat(kept["asked_at"])
    if not 0 <= (now - asked_at).total_seconds() < KEPT_CHOICE_S:
        return None
    return [PlanCandidate.from_json(c) for c in kept["candidates"]]
