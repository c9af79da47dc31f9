"""The options of one run, as the user gave them.

``RunOptions`` is stored with every run (as JSON), so ``thinnka resume`` needs
nothing but the run id. The rules they must obey are in ``validation``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from thinnka.errors import ConfigError

if TYPE_CHECKING:
    pass

__all__ = [
    "ALLOWED_GPU_COUNTS",
    "CLUSTER_NODE_GPUS",
    "DEFAULT_IMAGE",
    "MAX_NODES",
    "MIN_NODES",
    "OVERRIDE_KEY",
    "SINK_FLAGS",
    "THINNKA_IMAGE",
    "GpuStrategy",
    "RunOptions",
    "Trainer",
    "parse_custom_dependencies",
    "parse_overrides",
]

DEFAULT_IMAGE = "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404"
# thinnka's pod image (docker/): one tag per trainer stack, each with that stack installed.
THINNKA_IMAGE = "reeeon/thinnka"
ALLOWED_GPU_COUNTS = (1, 2, 4, 6, 8)
# Runpod's self-serve Instant Clusters: 2 to 8 nodes of 8 GPUs (larger ones through sales).
MIN_NODES, MAX_NODES, CLUSTER_NODE_GPUS = 2, 8, 8

Trainer = Literal["openr1", "trl"]
GpuStrategy = Literal["priority", "cheapest"]

# A recipe key as the trainers spell them (``--set KEY=VALUE``).
OVERRIDE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


SINK_FLAGS = {"webhook": "progress_url", "discord": "discord_webhook_url"}
"""Sink name -> the option holding its URL (a secret: never stored, see ``to_json``)."""


@dataclass(frozen=True)
class RunOptions:
    """Every option of ``thinnka run``; names and defaults follow the original tool."""

    repo_id: str = "unsloth/gemma-2b"
    gpu_count: int = 1  # per pod; with --nodes, per node
    # 1: one pod. 2..8: a Runpod Instant Cluster of that many nodes (planning/cluster.py).
    nodes: int = 1
    gpu_type: str | None = None
    image: str = DEFAULT_IMAGE
    use_thinnka_image: bool = False
    pod_name: str | None = None
    cloud_type: Literal["ALL", "SECURE", "COMMUNITY"] = "ALL"
    volume_gb: int = 300
    container_disk_gb: int | None = None
    min_vcpu: int = 4
    min_memory: int = 16
    # A Hub data set, or "" when the data is a local file (``dataset_path``).
    dataset_name: str = "open-r1/OpenR1-Math-220k"
    dataset_prompt_column: str = "problem"
    # A local JSONL/JSON/CSV/Parquet file or a folder of them (absolute): checked here,
    # uploaded into the run folder over SFTP (thinnka.data).
    dataset_path: str | None = None
    reasoning_tag: str = "<think>"
    reasoning_end_tag: str = "</think>"
    answer_tag: str = ""
    answer_end_tag: str = ""
    chat_template: str | None = None
    hub_model_id: str | None = None
    num_train_epochs: int = 1
    max_steps: int = -1
    per_device_train_batch: int = 1
    gradient_accumulation_steps: int = 4
    num_generations: int = 16
    max_prompt_length: int = 512
    max_completion_length: int = 2048
    dataset_fraction: float = 1.0
    dataset_seed: int = 42
    # The held-out split scored before and after training (thinnka.planning.evaluation):
    # a seeded share of the training data, or a data set of its own.
    eval_fraction: float = 0.05
    eval_dataset_name: str | None = None
    eval_dataset_path: str | None = None
    # Measurements of that split during training, evenly spaced: the report's curve.
    eval_points: int = 4
    sft: bool = False
    shard_model: bool = False
    merge_model: bool = False
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] = "sdpa"
    deepspeed_stage: int = 3
    # None means "not given": vLLM on for GRPO, and an explicit --use-vllm with
    # --sft can be refused instead of silently ignored.
    use_vllm: bool | None = None
    vllm_mode: str | None = None
    report_to: str = "none"
    output_dir: str | None = None
    skip_setup: bool = False
    dry_run: bool = False
    ssh_private_key: str | None = None
    ssh_public_key: str | None = None
    progress_url: str | None = None
    discord_webhook_url: str | None = None
    ssh_timeout_min: int = 20
    debug_remote: bool = False
    transformers_from_git: bool = False
    transformers_version: str | None = None
    trust_remote_code: bool = False
    custom_dependencies: tuple[str, ...] = ()
    # thinnka's own options.
    trainer: Trainer = "openr1"
    gpu_strategy: GpuStrategy = "priority"
    max_price: float | None = None
    max_hours: float | None = None
    max_cost: float | None = None
    watchdog_grace: float = 120.0
    detach: bool = False
    # Durable runs (thinnka.handlers.restart): a Runpod network volume by name (REST v2
    # only), and how many times a pod lost under the training is replaced by a new one.
    network_volume: str | None = None
    max_restarts: int = 2
    overrides: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # Which sinks (webhook, discord) were given by flag: their URLs hold tokens and are
    # never stored, so a later resume knows what it must be told again (see to_json).
    flag_sinks: tuple[str, ...] = ()

    # ----------------------------------------------------------- derived
    @property
    def mode(self) -> Literal["grpo", "sft"]:
        return "sft" if self.sft else "grpo"

    @property
    def multi_node(self) -> bool:
        """Training spread over an Instant Cluster's nodes rather than one pod."""
        return self.nodes > 1

    @property
    def vllm_enabled(self) -> bool:
        """vLLM generation is on for GRPO unless ``--no-vllm``; never for SFT."""
        return not self.sft and self.use_vllm is not False

    @property
    def effective_vllm_mode(self) -> str | None:
        return (self.vllm_mode or "colocate") if self.vllm_enabled else None

    @property
    def effective_image(self) -> str:
        return f"{THINNKA_IMAGE}:{self.trainer}" if self.use_thinnka_image else self.image

    @property
    def setup_skipped(self) -> bool:
        """Nothing is installed on the pod: --skip-setup, or thinnka's image, which has it."""
        return self.skip_setup or self.use_thinnka_image

    # ----------------------------------------------------------- storage
    def to_json(self) -> dict[str, Any]:
        """What the database keeps: everything but the sink URLs, which are secrets
        (a Discord webhook's token is its path); only their names are kept."""
        data = dataclasses.asdict(self)
        data["custom_dependencies"] = list(self.custom_dependencies)
        data["overrides"] = [list(pair) for pair in self.overrides]
        given = {name for name, key in SINK_FLAGS.items() if data[key]}
        data["flag_sinks"] = sorted(given.union(self.flag_sinks))
        data.update(dict.fromkeys(SINK_FLAGS.values()))  # the URLs themselves: None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["custom_dependencies"] = tuple(values.get("custom_dependencies", ()))
        values["overrides"] = tuple(tuple(pair) for pair in values.get("overrides", ()))
        values["flag_sinks"] = tuple(values.get("flag_sinks", ()))
        return cls(**values)


def parse_overrides(items: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Turn ``--set KEY=VALUE`` items into pairs; the recipe gives values their types."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not OVERRIDE_KEY.fullmatch(key):
            raise ConfigError(f"--set expects KEY=VALUE with a recipe key, got {item!r}.")
        pairs.append((key, value.strip()))
    return tuple(pairs)


def parse_custom_dependencies(raw: str | None) -> tuple[str, ...]:
    """Split the comma list; each item must be a pip requirement a pod can install, with
    no credential in its URL (``thinnka.values.check_requirement``)."""
    if not raw:
        return ()
    from thinnka.values import check_requirement

    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    for item in items:
        check_requirement("--custom-dependencies", item)
    return items
