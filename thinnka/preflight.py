"""The checks and choices made before any money is spent.

Shared by the gate and estimate handlers and by ``thinnka plan``: the
handlers persist what these functions return (as JSON in ``runs.plan``), so
later steps and ``resume`` never need to ask the Hub again.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from thinnka.clients.hub import HubModel
from thinnka.errors import AuthError, ConfigError, PreflightError, RefusedChoice, ThinnkaError
from thinnka.options import RunOptions, validate_for_settings
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
    from thinnka.data import LocalData
    from thinnka.planning.training import TrainingPlan
    from thinnka.rendering import Rendered
    from thinnka.services import Services
    from thinnka.settings import Settings

__all__ = [
    "Choice",
    "GateFacts",
    "Plan",
    "RunChecks",
    "begin_run_checks",
    "check_gate",
    "check_run_credentials",
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
        # The catalog does not depend on the gate's answers: Runpod is asked while the Hub is.
        runpod = services.runpod
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog")
        asked_offers = (
            None  # a cluster's catalog is asked by choose_candidates
            if options.multi_node
            else pool.submit(runpod.gpu_offers, options.gpu_count, options.cloud_type)
        )
        pool.shutdown(wait=False)  # a refusal need not wait for it (each request is bounded)
        gate = check_gate(services, options, require_write=True)
        need = memory_estimate(options, gate)
        offers = None if asked_offers is None else asked_offers.result()
        choose_candidates(services, options, gate, need, offers)
    except (RefusedChoice, ConfigError):
        raise  # the user's own choice or input cannot work: exit 2, nothing created
    except ThinnkaError:
        return None
    return gate


def check_run_credentials(settings: Settings, options: RunOptions) -> None:
    """The original's checks 8–10, before a row exists: keys and SSH key material."""
    if not settings.runpod_api_key:
        raise ConfigError("RUNPOD_API_KEY is required.")
    if not settings.hf_token:
        raise ConfigError("HF_TOKEN or HUGGINGFACE_HUB_TOKEN is required.")
    if options.report_to == "wandb" and not settings.wandb_api_key:
        raise ConfigError("--report-to wandb needs WANDB_API_KEY in the environment or .env.")
    from thinnka.pod.keys import resolve_key_pair

    resolve_key_pair(options, settings)


@dataclass(frozen=True)
class RunChecks:
    """A run's options, validated, and ``refuse_impossible_choices`` under way for them."""

    options: RunOptions  # --set merged, every rule checked
    refusal: Future[GateFacts | None]
    data: tuple[LocalData, ...] = ()  # local data sets, read and checked

    def gate(self) -> GateFacts | None:
        """Waits for the Hub and Runpod reads; raises what they refused (exit 2)."""
        return self.refusal.result()


def begin_run_checks(services: Services, options: RunOptions) -> RunChecks:
    """Check what needs no service now (invalid options: exit 2, nothing created), then
    start the Hub and Runpod reads in a thread and return at once.

    ``run`` calls this before it opens the database, so those round trips overlap the
    imports and the migration check instead of following them. The reads only read;
    ``services`` needs no store for them.
    """
    options = validate_for_settings(options, services.settings)  # --set merged, then checked
    check_run_credentials(services.settings, options)
    from thinnka.planning.overrides import check_overrides

    check_overrides(options)
    from thinnka.data.check import check_local_data

    data = check_local_data(options)  # read and checked here: exit 2, no row, no pod
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preflight")
    refusal = pool.submit(refuse_impossible_choices, services, options)
    pool.shutdown(wait=False)
    return RunChecks(options, refusal, data)


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
    data: tuple[LocalData, ...] = ()
    checkpoints: dict[str, Any] = field(default_factory=dict)
    volume: dict[str, Any] | None = None
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
            "data": [item.to_json() for item in self.data],
            "evaluation": evaluation_json(self.options, self.data),
            "checkpoints": self.checkpoints,
            "network_volume": self.volume,
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
    from thinnka.data.check import check_local_data
    from thinnka.planning.overrides import check_overrides
    from thinnka.pod.paths import remote_paths
    from thinnka.rendering import render

    check_overrides(options)
    data = check_local_data(options, tokens=True)  # a file that cannot train: exit 2
    gate = check_gate(services, options, require_write=False)
    training = training_plan(options, gate)  # decided once: estimate and recipe share it
    need = memory_estimate(options, gate, training)
    choice = choose_candidates(services, options, gate, need)
    paths = remote_paths(services.settings, "<run-id>", options, gate)
    rendered = render(options, gate.model_context(), paths, training)
    warnings = [*gate.warnings, *(w for item in data for w in item.warnings)]
    checkpoints = checkpoints_json(options, gate, training, rendered.recipe)
    if checkpoints.get("warning"):
        warnings.append(str(checkpoints["warning"]))
    volume = volume_json(services, options, choice.candidates, warnings)
    return Plan(
        options, gate, training, need, choice.candidates, choice.verdicts, rendered,
        warnings, data, checkpoints, volume, choice.clusters,
    )  # fmt: skip


def evaluation_json(options: RunOptions, data: tuple[LocalData, ...]) -> dict[str, Any] | None:
    """What the run scores before and after training (None: evaluation is off)."""
    from thinnka.planning.datarules import EVAL_MAX_ROWS, eval_rows

    source = options.eval_dataset_name or options.eval_dataset_path
    if source is None and options.eval_fraction <= 0:
        return None
    rows = {item.role: item.rows for item in data}
    if source is not None:
        held = min(rows["eval"], EVAL_MAX_ROWS) if "eval" in rows else None
        split = f"{source} (at most {EVAL_MAX_ROWS} rows)"
    else:
        held = eval_rows(rows["train"], options.eval_fraction) if "train" in rows else None
        split = (
            f"{options.eval_fraction:g} of the training rows held out (seed "
            f"{options.dataset_seed}, at most {EVAL_MAX_ROWS} rows)"
        )
    metrics = "eval loss and perplexity" if options.sft else "mean of each reward function"
    return {"split": split, "rows": held, "metrics": metrics}


def checkpoints_json(
    options: RunOptions, gate: GateFacts, training: TrainingPlan, recipe: dict[str, Any]
) -> dict[str, Any]:
    """Where the run's checkpoints go, how often (the recipe's, --set included), and what a
    save weighs and costs (``thinnka.planning.checkpoints``)."""
    from thinnka.planning.checkpoints import checkpoint_cadence, checkpoint_cost

    cadence = checkpoint_cadence(options)
    strategy = recipe.get("save_strategy", "steps")
    cost = checkpoint_cost(
        options, gate.model_facts().num_parameters, training.method, cadence.where
    )
    return {
        "where": cadence.where,
        "save_strategy": strategy,
        "save_steps": recipe.get("save_steps"),
        "keep": recipe.get("save_total_limit"),
        "size_gb": round(cost.size_bytes / 1e9, 3),
        "upload_s": None if cost.upload_s is None else round(cost.upload_s, 1),
        "max_restarts": options.max_restarts,
        "warning": cost.warning,
    }


def volume_json(
    services: Services, options: RunOptions, candidates: list[GpuOffer], warnings: list[str]
) -> dict[str, Any] | None:
    """The network volume's data center and the candidates with stock there (where the
    volume would be created, when it does not exist yet); None without --network-volume."""
    from thinnka.clients.runpod.volumes import find_volume, volume_api

    if not options.network_volume:
        return None
    api = volume_api(services.runpod)
    if api is None:
        warnings.append("--network-volume needs Runpod's REST v2 API.")
        return None
    try:
        stocked = {c.id: api.gpu_data_centers(c.id, options.gpu_count) for c in candidates}
        volume = find_volume(api, options.network_volume)
    except ThinnkaError as exc:
        warnings.append(f"Network volume {options.network_volume} not checked: {exc.message}")
        return None
    where: str | None
    if volume is not None:
        where, exists = volume.data_center, True
    else:
        where = next((dcs[0] for c in candidates if (dcs := stocked[c.id])), None)
        exists = False
    return {
        "name": options.network_volume,
        "exists": exists,
        "id": volume.id if volume else None,
        "data_center": where,
        "candidates": [c.id for c in candidates if where is not None and where in stocked[c.id]],
    }
