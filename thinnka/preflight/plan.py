"""``thinnka plan``: gate, estimate, choose and render without creating anything, and the
plan's JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from thinnka.errors import ThinnkaError
from thinnka.options import RunOptions
from thinnka.options.limits import limits_json
from thinnka.planning.cluster import ClusterOffer
from thinnka.planning.facts import GateFacts
from thinnka.planning.gpus import GpuOffer, GpuVerdict
from thinnka.planning.vram import MemoryEstimate
from thinnka.preflight.choice import choose_candidates, memory_estimate, offer_json, training_plan
from thinnka.preflight.gate import check_gate

if TYPE_CHECKING:
    from thinnka.data import LocalData
    from thinnka.planning.training import TrainingPlan
    from thinnka.rendering import Rendered
    from thinnka.services import Services

__all__ = ["Plan", "checkpoints_json", "evaluation_json", "make_plan", "volume_json"]


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
    return {"split": split, "rows": held, "metrics": metrics, "points": options.eval_points}


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
