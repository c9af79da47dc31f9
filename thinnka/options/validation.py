"""The rules a run's options must obey, checked before anything is created.

Validation is pure: it raises ``ConfigError`` with a message that says what to change.
``--set`` pairs are folded into the options they belong to first (``folding``).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from thinnka.errors import ConfigError
from thinnka.options.folding import fold_overrides
from thinnka.options.run_options import (
    ALLOWED_GPU_COUNTS,
    CLUSTER_NODE_GPUS,
    MAX_NODES,
    MIN_NODES,
    RunOptions,
)
from thinnka.values import (
    check_chat_template,
    check_hub_id,
    check_image,
    check_line,
    check_number,
    check_pod_path,
    check_requirement,
    check_web_url,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from thinnka.settings import Settings

__all__ = ["validate", "validate_for_settings", "validate_sink_urls"]

_POD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}")
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_GPU_TYPE = re.compile(r"[A-Za-z0-9 ._-]{1,64}")
_VERSION_TEXT = re.compile(r"[A-Za-z0-9.+!-]{1,64}")


def validate(options: RunOptions) -> RunOptions:
    """Merge ``--set`` into the options it belongs to, check every rule, return the result.

    The one validation layer: ``plan`` and ``run`` pass through here, and the options it
    returns (owned ``--set`` keys folded into their options) are what is stored and
    rendered, so a value reaches a recipe only after the rules of its option. Raises
    ``ConfigError`` naming the flag. The first rules and their messages are the original
    tool's; the rest refuse what the original silently ignored or never checked.
    """
    o = fold_overrides(options)
    if bool(o.answer_tag) != bool(o.answer_end_tag):
        raise ConfigError("Answer tags must include both start and end or be empty.")
    if bool(o.reasoning_tag) != bool(o.reasoning_end_tag):
        raise ConfigError("Reasoning tags must include both start and end or be empty.")
    if o.gpu_count not in ALLOWED_GPU_COUNTS:
        raise ConfigError("GPU count must be one of 1, 2, 4, 6, 8.")
    if not (math.isfinite(o.dataset_fraction) and 0 < o.dataset_fraction <= 1):
        raise ConfigError("--dataset-fraction must be between 0 and 1 (exclusive of 0).")
    if o.merge_model and not o.sft:
        raise ConfigError("--merge-model is only supported with SFT mode (use --sft flag).")
    if o.merge_model and o.shard_model:
        raise ConfigError("--merge-model is not supported with --shard-model (QLoRA disabled).")
    _check_nodes(o)

    check_hub_id("--repo-id", o.repo_id)
    if o.hub_model_id is not None:
        check_hub_id("--hub-model-id", o.hub_model_id)
    _check_data_sources(o)
    _check_texts(o)
    _check_numbers(o)

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

    if o.setup_skipped and (
        o.custom_dependencies or o.transformers_version or o.transformers_from_git
    ):
        flag = "--skip-setup" if o.skip_setup else "--use-thinnka-image"
        raise ConfigError(
            f"{flag} installs nothing, so --custom-dependencies, --transformers-version "
            "and --transformers-from-git cannot apply. Drop one side."
        )
    if o.transformers_from_git and o.transformers_version not in (None, "git"):
        raise ConfigError("Give --transformers-from-git or --transformers-version, not both.")
    if o.transformers_version not in (None, "git"):
        _check_version(o.transformers_version)
    if o.report_to not in ("none", "wandb", "tensorboard"):
        raise ConfigError("--report-to must be one of none, wandb, tensorboard.")
    if o.pod_name is not None and not _POD_NAME.fullmatch(o.pod_name):
        raise ConfigError("--pod-name may hold letters, digits, '.', '_' and '-' (up to 81).")
    if o.network_volume is not None and not _VOLUME_NAME.fullmatch(o.network_volume):
        raise ConfigError(
            "--network-volume may hold letters, digits, '.', '_' and '-' (1 to 64 characters)."
        )
    if o.network_volume is not None and o.cloud_type == "COMMUNITY":
        raise ConfigError(
            "--network-volume needs Secure Cloud: Runpod has no volumes on Community."
        )
    return o


def validate_for_settings(options: RunOptions, settings: Settings) -> RunOptions:
    """``validate``, then what the options need from the settings; ``plan`` and ``run`` alike.

    A plan that ``run`` would refuse is not a plan, so the checks that need no remote
    service (the W&B key) are made here for both commands.
    """
    o = validate(options)
    if o.multi_node and settings.runpod_api == "graphql":
        raise ConfigError(
            "--nodes needs Runpod's REST v2 API (Instant Clusters are /v2/clusters; GraphQL has "
            "no cluster calls): unset THINNKA_RUNPOD_API=graphql."
        )
    if o.report_to == "wandb" and not settings.wandb_api_key:
        raise ConfigError("--report-to wandb needs WANDB_API_KEY in the environment or .env.")
    if o.network_volume is not None and settings.runpod_api != "rest":
        # Volumes are a REST v2 resource (/v2/network-volumes); thinnka's GraphQL client
        # does not speak them, so a run on that transport could not keep its promise.
        raise ConfigError(
            "--network-volume needs Runpod's REST v2 API; THINNKA_RUNPOD_API is "
            f"{settings.runpod_api!r}. Unset it (rest is the default) or drop --network-volume."
        )
    return o


def _check_nodes(o: RunOptions) -> None:
    """``--nodes``: what a Runpod Instant Cluster can be, and what can train across one.

    Runpod sells self-serve clusters of 2 to 8 nodes of 8 GPUs each. Across nodes thinnka
    trains under ZeRO-3 (the point of more nodes is sharding what one pod cannot hold), so
    what cannot run under ZeRO-3, or needs one machine, is refused here.
    """
    if o.nodes == 1:
        return
    if not MIN_NODES <= o.nodes <= MAX_NODES:
        raise ConfigError(
            f"--nodes must be {MIN_NODES} to {MAX_NODES} (Runpod's self-serve Instant "
            "Clusters), or 1 for one pod."
        )
    if o.gpu_count != CLUSTER_NODE_GPUS:
        raise ConfigError(
            f"Runpod's self-serve Instant Clusters are nodes of {CLUSTER_NODE_GPUS} GPUs: pass "
            f"--gpu-count {CLUSTER_NODE_GPUS} with --nodes (it counts GPUs per node)."
        )
    if o.effective_vllm_mode == "server":
        raise ConfigError(
            "--vllm-mode server serves vLLM from one GPU of one machine, which the other nodes "
            "cannot share: with --nodes use colocate (the default) or --no-vllm."
        )
    if o.merge_model:
        raise ConfigError(
            "--merge-model merges a QLoRA adapter; --nodes trains under ZeRO-3, which cannot "
            "load a 4-bit base. Drop one of them."
        )
    if o.network_volume is not None:
        raise ConfigError(
            "--network-volume attaches one volume to one pod; an Instant Cluster (--nodes) "
            "keeps its checkpoints on the Hub. Drop one of them."
        )


# ------------------------------------------------------------------ value rules
# Upper bounds keep every number finite and sane for YAML, JSON and the trainers.
_INT_RANGES: tuple[tuple[str, str, int], ...] = (
    ("per_device_train_batch", "--per-device-train-batch", 4096),
    ("gradient_accumulation_steps", "--gradient-accumulation-steps", 65536),
    ("num_train_epochs", "--num-train-epochs", 10_000),
    ("max_prompt_length", "--max-prompt-length", 1 << 21),
    ("max_completion_length", "--max-completion-length", 1 << 21),
    ("ssh_timeout_min", "--ssh-timeout-min", 24 * 60),
    ("min_vcpu", "--min-vcpu", 1024),
    ("min_memory", "--min-memory", 16384),
)


def _check_numbers(o: RunOptions) -> None:
    for name, flag, high in _INT_RANGES:
        value = getattr(o, name)
        _positive(flag, value)
        if value > high:
            raise ConfigError(f"{flag} must be at most {high}, got {value}.")
    if o.max_steps == 0 or o.max_steps < -1 or o.max_steps > 10**9:
        raise ConfigError("--max-steps must be a positive number of steps (or -1 for epochs).")
    if not 0 <= o.volume_gb <= 10_000:
        raise ConfigError("--volume-gb must be 0 or more (at most 10000).")
    if o.container_disk_gb is not None:
        _positive("--container-disk-gb", o.container_disk_gb)
        if o.container_disk_gb > 10_000:
            raise ConfigError("--container-disk-gb must be at most 10000.")
    if not 0 <= o.dataset_seed < 2**32:
        raise ConfigError("--dataset-seed must be between 0 and 4294967295.")
    if o.num_generations > 1024:
        raise ConfigError("--num-generations must be at most 1024.")
    if o.max_price is not None:
        if o.max_price <= 0:
            raise ConfigError("--max-price must be a price above 0 (USD per hour).")
        check_number("--max-price", o.max_price, low=0, high=1000, low_open=True)
    if o.max_hours is not None:
        if o.max_hours <= 0:
            raise ConfigError("--max-hours must be above 0.")
        check_number("--max-hours", o.max_hours, low=0, high=24 * 30, low_open=True)
    if o.max_cost is not None:
        if o.max_cost <= 0:
            raise ConfigError("--max-cost must be an amount above 0 (USD).")
        check_number("--max-cost", o.max_cost, low=0, high=1_000_000, low_open=True)
    check_number("--watchdog-grace", o.watchdog_grace, low=1, high=24 * 3600)
    if not 0 <= o.max_restarts <= 10:
        raise ConfigError(f"--max-restarts must be between 0 and 10, got {o.max_restarts}.")
    if o.deepspeed_stage not in (2, 3):
        raise ConfigError("--deepspeed-stage must be 2 or 3.")


def _check_texts(o: RunOptions) -> None:
    for flag, value, limit in (
        ("--reasoning-tag", o.reasoning_tag, 64),
        ("--reasoning-end-tag", o.reasoning_end_tag, 64),
        ("--answer-tag", o.answer_tag, 64),
        ("--answer-end-tag", o.answer_end_tag, 64),
        ("--dataset-prompt-column", o.dataset_prompt_column, 128),
        ("--ssh-private-key", o.ssh_private_key or "", 1024),
        ("--ssh-public-key", o.ssh_public_key or "", 16384),
    ):
        check_line(flag, value, limit=limit)
    if not o.dataset_prompt_column.strip():
        raise ConfigError("--dataset-prompt-column must name a column.")
    if o.gpu_type is not None and not _GPU_TYPE.fullmatch(o.gpu_type):
        raise ConfigError(
            "--gpu-type may hold letters, digits, spaces, '.', '_' and '-' (up to 64)."
        )
    check_image("--image", o.image)
    if o.output_dir is not None:
        check_pod_path("--output-dir", o.output_dir, absolute_ok=True)
    validate_sink_urls(
        {"progress_url": o.progress_url, "discord_webhook_url": o.discord_webhook_url}
    )
    if o.chat_template is not None:
        check_chat_template("--chat-template", o.chat_template)
    for item in o.custom_dependencies:
        check_requirement("--custom-dependencies", item)


# Above half, the "held-out" part would be most of the data: a mistake, not a split.
MAX_EVAL_FRACTION = 0.5
MAX_EVAL_POINTS = 20  # each one is a pass over up to 200 rows (GRPO: generated)


def _check_data_sources(o: RunOptions) -> None:
    """One training source (a Hub data set or a local path), at most one eval source."""
    if o.dataset_path is not None:
        if o.dataset_name:  # --set dataset_name=... with --dataset-path
            raise ConfigError("--dataset-path and --dataset-name exclude each other; give one.")
        check_line("--dataset-path", o.dataset_path, limit=4096)
    else:
        check_hub_id("--dataset-name", o.dataset_name, what="dataset repo id")
    if o.eval_dataset_name is not None and o.eval_dataset_path is not None:
        raise ConfigError("--eval-dataset-name and --eval-dataset-path exclude each other.")
    if o.eval_dataset_name is not None:
        check_hub_id("--eval-dataset-name", o.eval_dataset_name, what="dataset repo id")
    if o.eval_dataset_path is not None:
        check_line("--eval-dataset-path", o.eval_dataset_path, limit=4096)
    check_number("--eval-fraction", o.eval_fraction, low=0, high=MAX_EVAL_FRACTION)
    if not 0 <= o.eval_points <= MAX_EVAL_POINTS:
        raise ConfigError(
            f"--eval-points must be between 0 and {MAX_EVAL_POINTS}, got {o.eval_points}."
        )


def _check_version(value: str) -> None:
    from packaging.version import InvalidVersion, Version

    try:
        if not _VERSION_TEXT.fullmatch(value):
            raise InvalidVersion(value)
        Version(value)
    except InvalidVersion:
        raise ConfigError(
            f"--transformers-version {value!r} is not a version (e.g. 4.57.6) or 'git'."
        ) from None


def _positive(flag: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{flag} must be 1 or more, got {value}.")


def validate_sink_urls(urls: Mapping[str, str | None]) -> dict[str, str]:
    """The sink URL options given (``progress_url``, ``discord_webhook_url``), checked."""
    flags = {"progress_url": "--progress-url", "discord_webhook_url": "--discord-webhook-url"}
    given = {key: url for key, url in urls.items() if url is not None}
    for key, url in given.items():
        check_web_url(flags[key], url)
    return given
