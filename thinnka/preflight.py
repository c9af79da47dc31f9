"""The checks and choices made before any money is spent.

Shared by the gate and estimate handlers and by ``thinnka plan``: the
handlers persist what these functions return (as JSON in ``runs.plan``), so
later steps and ``resume`` never need to ask the Hub again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from thinnka.clients.hub import HubModel
from thinnka.errors import AuthError, ConfigError, PreflightError, RefusedChoice, ThinnkaError
from thinnka.options import RunOptions
from thinnka.options.limits import limits_json
from thinnka.options.run_options import CLUSTER_NODE_GPUS, MAX_NODES

# GateFacts moved to thinnka.planning.facts (planner and remote both need it); re-exported here.
from thinnka.planning.cluster import ClusterOffer, choose_cluster, nodes_needed
from thinnka.planning.facts import GateFacts, PlanCandidate
from thinnka.planning.gpus import GpuOffer, GpuVerdict, architecture, choose, explain
from thinnka.planning.stacks import stack_for
from thinnka.planning.vram import MemoryEstimate, estimate, shape_for

if TYPE_CHECKING:
    from thinnka.clients.runpod.clusters import RestClusters
    from thinnka.planning.training import TrainingPlan
    from thinnka.rendering import Rendered
    from thinnka.services import Services

__all__ = [
    "Choice",
    "GateFacts",
    "Plan",
    "check_gate",
    "choose_candidates",
    "choose_gpus",
    "cluster_api",
    "default_hub_model_id",
    "make_plan",
    "memory_estimate",
    "refuse_impossible_choices",
    "training_plan",
]


def default_hub_model_id(user: str, options: RunOptions) -> str:
    """``<user>/<model name>-<grpo|sft>-thinnka``, as the original named it."""
    return f"{user}/{options.repo_id.split('/')[-1]}-{options.mode}-thinnka"


def check_gate(services: Services, options: RunOptions, *, require_write: bool = True) -> GateFacts:
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
        raise RefusedChoice(
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


def refuse_impossible_choices(services: Services, options: RunOptions) -> GateFacts | None:
    """The gate and the GPU choice, asked before ``run`` creates a row.

    A refusal of the user's own choice (a namespace the token cannot write, a
    ``--max-price`` below every GPU that fits, a ``--gpu-type`` matching none)
    raises ``RefusedChoice``, and input the training plan cannot work with (a
    ``--chat-template`` that is no template, a 4-bit base under ZeRO-3) raises
    ``ConfigError``: exit 2 with nothing created, as ``plan`` refuses them. Every other failure
    (a gated model, the Hub or Runpod unreachable) returns ``None`` and is met
    again by the handlers, so the failed run is recorded with its reason. The
    gate's facts are returned for the gate step to keep: it need not ask twice.
    """
    try:
        gate = check_gate(services, options, require_write=True)
        need = memory_estimate(options, gate)
        choose_candidates(services, options, gate, need)
    except (RefusedChoice, ConfigError):
        raise  # the user's input cannot work (a recipe combination included): exit 2
    except ThinnkaError:
        return None
    return gate


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
    services: Services, options: RunOptions, gate: GateFacts, need: MemoryEstimate
) -> Choice:
    """What to rent: pods of ``--gpu-count`` GPUs, or (``--nodes``) Instant Clusters.

    A model that fits no single pod is refused with the number of nodes that would hold it,
    when some cluster could.
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


@dataclass
class Plan:
    """Everything ``thinnka plan`` shows."""

    options: RunOptions
    gate: GateFacts
    training: TrainingPlan
    need: MemoryEstimate
    candidates: list[GpuOffer]
    verdicts: list[GpuVerdict]
    rendered: Rendered
    warnings: list[str]
    clusters: list[ClusterOffer] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        r, t = self.rendered, self.training
        wrapper = None
        if r.command != r.entry_command:
            wrapper = {
                "scripts": [
                    s for s in (t.wrapper, _SERVER_LAUNCHER if r.server_command else None) if s
                ],
                "command": r.command,
                "why": t.why_wrapper or "serve_and_train.py starts `trl vllm-serve` first",
            }
        return {
            "repo_id": self.options.repo_id,
            "hub_model_id": self.gate.hub_model_id,
            "mode": self.options.mode,
            "trainer": self.options.trainer,
            "gpu_count": self.options.gpu_count,
            "training": t.to_json(),
            "model": {
                "parameters": self.gate.model_facts().num_parameters,
                "gated": self.gate.gated,
                "has_chat_template": self.gate.has_chat_template,
                "transformers_version": self.gate.transformers_version,
            },
            "memory": {
                "required_gb": round(self.need.required_gb(), 2),
                "breakdown_gb": {k: round(v, 3) for k, v in self.need.breakdown("GB")},
                "notes": list(self.need.notes),
            },
            "gpu": self.candidates[0].id if self.candidates else None,
            "candidates": [offer_json(offer) for offer in self.candidates],
            "skipped": [
                {"id": v.offer.id, "reason": v.reason} for v in self.verdicts if not v.kept
            ],
            "recipe": r.recipe,
            "accelerate": r.accelerate,
            "command": r.entry_command,
            "wrapper": wrapper,
            "vllm_server": r.server_command,
            "transformers": {"spec": t.transformers.spec, "reason": t.transformers.reason},
            "notes": list(r.notes),
            "warnings": self.warnings,
            "limits": limits_json(self.options),
            "cluster": _cluster_json(self.options, self.clusters),
        }


_SERVER_LAUNCHER = "serve_and_train.py"


def _cluster_json(options: RunOptions, clusters: list[ClusterOffer]) -> dict[str, Any] | None:
    """``--nodes``: the first cluster candidate and its size, price and per-GPU figure."""
    if not options.multi_node:
        return None
    first = clusters[0] if clusters else None
    return {
        "nodes": options.nodes,
        "gpus_per_node": options.gpu_count,
        "total_gpus": options.nodes * options.gpu_count,
        "gpu": first.gpu.id if first else None,
        "label": first.label if first else None,
        "price_per_hour": first.price_per_hour if first else None,
        "candidates": [
            {"id": c.gpu.id, "label": c.label, "price_per_hour": c.price_per_hour} for c in clusters
        ],
    }


def offer_json(offer: GpuOffer) -> dict[str, Any]:
    return PlanCandidate.from_offer(offer).to_json()


def make_plan(services: Services, options: RunOptions) -> Plan:
    """Gate, estimate, choose and render, without creating anything."""
    from thinnka.planning.overrides import check_overrides
    from thinnka.pod.paths import remote_paths
    from thinnka.rendering import render

    check_overrides(options)
    gate = check_gate(services, options, require_write=False)
    training = training_plan(options, gate)  # decided once: estimate and recipe share it
    need = memory_estimate(options, gate, training)
    choice = choose_candidates(services, options, gate, need)
    paths = remote_paths(services.settings, "<run-id>", options, gate)
    rendered = render(options, gate.model_context(), paths, training)
    return Plan(
        options,
        gate,
        training,
        need,
        choice.candidates,
        choice.verdicts,
        rendered,
        list(gate.warnings),
        choice.clusters,
    )
