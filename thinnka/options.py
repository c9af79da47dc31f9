"""The options of one run, as the user gave them, and the rules they must obey.

``RunOptions`` is stored with every run (as JSON), so ``thinnka resume`` needs
nothing but the run id. Validation is pure: it runs before anything is created
and raises ``ConfigError`` with a message that says what to change.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from thinnka.errors import ConfigError

__all__ = [
    "ALLOWED_GPU_COUNTS",
    "DEFAULT_IMAGE",
    "THINNKA_IMAGE",
    "RunOptions",
    "parse_overrides",
    "validate",
]

DEFAULT_IMAGE = "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404"
THINNKA_IMAGE = "reeeon/thinnka:latest"
ALLOWED_GPU_COUNTS = (1, 2, 4, 6, 8)

Trainer = Literal["openr1", "trl"]
GpuStrategy = Literal["priority", "cheapest"]

# Hub repo ids: "name" or "namespace/name", the characters the Hub allows.
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
_OVERRIDE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class RunOptions:
    """Every option of ``thinnka run``; names and defaults follow the original tool."""

    repo_id: str = "unsloth/gemma-2b"
    gpu_count: int = 1
    gpu_type: str | None = None
    image: str = DEFAULT_IMAGE
    use_thinnka_image: bool = False
    pod_name: str | None = None
    cloud_type: Literal["ALL", "SECURE", "COMMUNITY"] = "ALL"
    volume_gb: int = 300
    container_disk_gb: int | None = None
    min_vcpu: int = 4
    min_memory: int = 16
    dataset_name: str = "open-r1/OpenR1-Math-220k"
    dataset_prompt_column: str = "problem"
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
    overrides: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    # ----------------------------------------------------------- derived
    @property
    def mode(self) -> Literal["grpo", "sft"]:
        return "sft" if self.sft else "grpo"

    @property
    def vllm_enabled(self) -> bool:
        """vLLM generation is on for GRPO unless ``--no-vllm``; never for SFT."""
        return not self.sft and self.use_vllm is not False

    @property
    def effective_vllm_mode(self) -> str | None:
        return (self.vllm_mode or "colocate") if self.vllm_enabled else None

    @property
    def effective_image(self) -> str:
        return THINNKA_IMAGE if self.use_thinnka_image else self.image

    # ----------------------------------------------------------- storage
    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["custom_dependencies"] = list(self.custom_dependencies)
        data["overrides"] = [list(pair) for pair in self.overrides]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["custom_dependencies"] = tuple(values.get("custom_dependencies", ()))
        values["overrides"] = tuple(tuple(pair) for pair in values.get("overrides", ()))
        return cls(**values)


def parse_overrides(items: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Turn ``--set KEY=VALUE`` items into pairs; the recipe gives values their types."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _OVERRIDE_KEY.match(key):
            raise ConfigError(f"--set expects KEY=VALUE with a recipe key, got {item!r}.")
        pairs.append((key, value.strip()))
    return tuple(pairs)


def parse_custom_dependencies(raw: str | None) -> tuple[str, ...]:
    """Split the comma list; each item must be a valid pip requirement specifier."""
    if not raw:
        return ()
    from packaging.requirements import InvalidRequirement, Requirement

    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    for item in items:
        try:
            Requirement(item)
        except InvalidRequirement as exc:
            raise ConfigError(
                f"--custom-dependencies: {item!r} is not a valid requirement specifier ({exc})."
            ) from None
    return items


def validate(options: RunOptions) -> RunOptions:
    """Check every rule; return the options unchanged or raise ``ConfigError``.

    The first five rules and their messages are the original tool's; the rest
    refuse what the original silently ignored or never checked.
    """
    o = options
    if bool(o.answer_tag) != bool(o.answer_end_tag):
        raise ConfigError("Answer tags must include both start and end or be empty.")
    if bool(o.reasoning_tag) != bool(o.reasoning_end_tag):
        raise ConfigError("Reasoning tags must include both start and end or be empty.")
    if o.gpu_count not in ALLOWED_GPU_COUNTS:
        raise ConfigError("GPU count must be one of 1, 2, 4, 6, 8.")
    if not 0 < o.dataset_fraction <= 1:
        raise ConfigError("--dataset-fraction must be between 0 and 1 (exclusive of 0).")
    if o.merge_model and not o.sft:
        raise ConfigError("--merge-model is only supported with SFT mode (use --sft flag).")
    if o.merge_model and o.shard_model:
        raise ConfigError("--merge-model is not supported with --shard-model (QLoRA disabled).")

    _check_repo_id("--repo-id", o.repo_id)
    if o.hub_model_id is not None:
        _check_repo_id("--hub-model-id", o.hub_model_id)
    if not o.dataset_name.strip() or not _REPO_ID.match(o.dataset_name):
        raise ConfigError(f"--dataset-name {o.dataset_name!r} is not a valid dataset repo id.")

    _positive("--per-device-train-batch", o.per_device_train_batch)
    _positive("--gradient-accumulation-steps", o.gradient_accumulation_steps)
    _positive("--num-train-epochs", o.num_train_epochs)
    _positive("--max-prompt-length", o.max_prompt_length)
    _positive("--max-completion-length", o.max_completion_length)
    _positive("--ssh-timeout-min", o.ssh_timeout_min)
    _positive("--min-vcpu", o.min_vcpu)
    _positive("--min-memory", o.min_memory)
    if o.max_steps == 0 or o.max_steps < -1:
        raise ConfigError("--max-steps must be a positive number of steps (or -1 for epochs).")
    if o.volume_gb < 0:
        raise ConfigError("--volume-gb must be 0 or more.")
    if o.container_disk_gb is not None:
        _positive("--container-disk-gb", o.container_disk_gb)
    if o.max_price is not None and o.max_price <= 0:
        raise ConfigError("--max-price must be a price above 0 (USD per hour).")
    if o.max_hours is not None and o.max_hours <= 0:
        raise ConfigError("--max-hours must be above 0.")
    if o.max_cost is not None and o.max_cost <= 0:
        raise ConfigError("--max-cost must be an amount above 0 (USD).")
    if o.watchdog_grace < 1:
        raise ConfigError("--watchdog-grace must be at least 1 second.")
    if o.deepspeed_stage not in (2, 3):
        raise ConfigError("--deepspeed-stage must be 2 or 3.")

    if not o.sft and o.num_generations < 2:
        raise ConfigError("--num-generations must be at least 2 (GRPO compares generations).")
    if o.sft and o.use_vllm is True:
        raise ConfigError("--use-vllm only applies to GRPO; SFT does not generate. Drop it.")
    if o.vllm_mode is not None:
        if o.vllm_mode not in ("colocate", "server"):
            raise ConfigError("--vllm-mode must be 'colocate' or 'server'.")
        if not o.vllm_enabled:
            raise ConfigError("--vllm-mode needs vLLM (GRPO without --no-vllm).")
    if o.effective_vllm_mode == "server" and o.gpu_count < 2:
        raise ConfigError("--vllm-mode server needs --gpu-count 2 or more (one GPU serves vLLM).")

    if o.skip_setup and (
        o.custom_dependencies or o.transformers_version or o.transformers_from_git
    ):
        raise ConfigError(
            "--skip-setup installs nothing, so --custom-dependencies, --transformers-version "
            "and --transformers-from-git cannot apply. Drop one side."
        )
    if o.transformers_from_git and o.transformers_version not in (None, "git"):
        raise ConfigError("Give --transformers-from-git or --transformers-version, not both.")
    if o.transformers_version not in (None, "git"):
        _check_version(o.transformers_version)
    if o.report_to not in ("none", "wandb", "tensorboard"):
        raise ConfigError("--report-to must be one of none, wandb, tensorboard.")
    if o.pod_name is not None and not re.match(r"^[A-Za-z0-9][\w.-]{0,80}$", o.pod_name):
        raise ConfigError("--pod-name may hold letters, digits, '.', '_' and '-' (up to 81).")
    for key, _ in o.overrides:
        if not _OVERRIDE_KEY.match(key):
            raise ConfigError(f"--set key {key!r} is not a recipe key.")
    return o


def _check_repo_id(flag: str, value: str) -> None:
    if not _REPO_ID.match(value) or ".." in value or value.endswith((".git", ".")):
        raise ConfigError(f"{flag} {value!r} is not a valid Hub repo id (expected ORG/NAME).")


def _check_version(value: str) -> None:
    from packaging.version import InvalidVersion, Version

    try:
        Version(value)
    except InvalidVersion:
        raise ConfigError(
            f"--transformers-version {value!r} is not a version (e.g. 4.57.6) or 'git'."
        ) from None


def _positive(flag: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{flag} must be 1 or more, got {value}.")
