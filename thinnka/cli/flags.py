"""The options of ``thinnka run`` and ``thinnka plan``, declared once as data.

Typer reads a command's options from its function signature; both commands
get the signature built here, so the two never drift apart. The table keeps
the original tool's names, aliases and defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from thinnka.options import DEFAULT_IMAGE, RunOptions, parse_custom_dependencies, parse_overrides

__all__ = ["COMMON_OPTIONS", "RUN_OPTIONS", "OptionSpec", "options_from_kwargs", "with_options"]


@dataclass(frozen=True)
class OptionSpec:
    name: str
    flags: tuple[str, ...]
    type: Any
    default: Any
    help: str


def _o(name: str, flags: str | tuple[str, ...], type_: Any, default: Any, help: str) -> OptionSpec:
    return OptionSpec(name, (flags,) if isinstance(flags, str) else flags, type_, default, help)


RUN_OPTIONS: tuple[OptionSpec, ...] = (
    _o("repo_id", "--repo-id", str, "unsloth/gemma-2b", "Hugging Face model repo to fine-tune."),
    _o("gpu_count", "--gpu-count", int, 1, "GPUs in the pod: 1, 2, 4, 6 or 8."),
    _o("gpu_type", "--gpu-type", str | None, None,
       "Only GPUs whose name contains this text (case-insensitive), e.g. 'L40S'."),
    _o("image", "--image", str, DEFAULT_IMAGE, "Container image of the pod."),
    _o("use_thinnka_image", "--use-thinnka-image", bool, False,
       "Use thinnka's image for the trainer (reeeon/thinnka:<trainer>, see docker/): "
       "the stack is installed already, so setup is skipped."),
    _o("pod_name", "--pod-name", str | None, None,
       "Pod name prefix (default thinnka-<model>-<N>x); the run id is always appended."),
    _o("cloud_type", "--cloud-type", str, "ALL", "Runpod cloud: ALL, SECURE or COMMUNITY."),
    _o("volume_gb", "--volume-gb", int, 300,
       "Persistent volume size in GB (0: sized from the model)."),
    _o("container_disk_gb", "--container-disk-gb", int | None, None,
       "Container disk in GB (default: sized from the model, at least 40)."),
    _o("min_vcpu", "--min-vcpu", int, 4, "Minimum vCPUs of the pod."),
    _o("min_memory", "--min-memory", int, 16, "Minimum system memory of the pod in GB."),
    _o("dataset_name", "--dataset-name", str, "open-r1/OpenR1-Math-220k",
       "Training data set repo."),
    _o("dataset_prompt_column", "--dataset-prompt-column", str, "problem",
       "Column holding the prompt (GRPO)."),
    _o("reasoning_tag", "--reasoning-tag", str, "<think>", "Tag that opens the reasoning (GRPO)."),
    _o("reasoning_end_tag", "--reasoning-end-tag", str, "</think>",
       "Tag that closes the reasoning (GRPO)."),
    _o("answer_tag", "--answer-tag", str, "", "Tag that opens the final answer (GRPO)."),
    _o("answer_end_tag", "--answer-end-tag", str, "", "Tag that closes the final answer (GRPO)."),
    _o("chat_template", "--chat-template", str | None, None,
       "Chat template: a file path, or the template text itself."),
    _o("hub_model_id", "--hub-model-id", str | None, None,
       "Where to push the result (default <you>/<model>-<grpo|sft>-thinnka)."),
    _o("num_train_epochs", "--num-train-epochs", int, 1, "Training epochs."),
    _o("max_steps", "--max-steps", int, -1, "Stop after this many steps (-1: run the epochs)."),
    _o("per_device_train_batch", "--per-device-train-batch", int, 1,
       "Per-device training batch size."),
    _o("gradient_accumulation_steps", "--gradient-accumulation-steps", int, 4,
       "Gradient accumulation steps."),
    _o("num_generations", "--num-generations", int, 16,
       "Completions per prompt (GRPO); adjusted to divide the batch."),
    _o("max_prompt_length", "--max-prompt-length", int, 512, "Maximum prompt length in tokens."),
    _o("max_completion_length", "--max-completion-length", int, 2048,
       "Maximum completion length in tokens."),
    _o("dataset_fraction", "--dataset-fraction", float, 1.0,
       "Train on this fraction of the data set (0 < f <= 1)."),
    _o("dataset_seed", "--dataset-seed", int, 42, "Seed of the data set subsample."),
    _o("sft", "--sft", bool, False, "Supervised fine-tuning instead of GRPO."),
    _o("shard_model", "--shard-model", bool, False,
       "Shard the model with ZeRO-3 (disables QLoRA for SFT)."),
    _o("merge_model", "--merge-model", bool, False,
       "SFT + QLoRA: merge the adapter into the base model and push the merged model."),
    _o("attn_implementation", "--attn-implementation", str, "sdpa",
       "Attention: sdpa, flash_attention_2 or eager."),
    _o("deepspeed_stage", "--deepspeed-stage", int, 3, "DeepSpeed ZeRO stage: 2 or 3."),
    _o("use_vllm", ("--use-vllm/--no-vllm", " /--disable-vllm"), bool | None, None,
       "Generate with vLLM during GRPO (default on)."),
    _o("vllm_mode", "--vllm-mode", str | None, None,
       "vLLM placement: colocate (default) or server (one GPU serves vLLM)."),
    _o("report_to", "--report-to", str, "none", "Experiment tracker: none, wandb or tensorboard."),
    _o("output_dir", "--output-dir", str | None, None, "Training output folder on the pod."),
    _o("skip_setup", "--skip-setup", bool, False,
       "Install nothing; check that the image has the trainer."),
    _o("dry_run", "--dry-run", bool, False, "Plan only, like `thinnka plan`: no pod is created."),
    _o("ssh_private_key", "--ssh-private-key", str | None, None,
       "Private key file for the pod (default SSH_PRIVATE_KEY_PATH, ~/.ssh/id_ed25519)."),
    _o("ssh_public_key", "--ssh-public-key", str | None, None,
       "Public key text for the pod (default SSH_PUBLIC_KEY, ~/.ssh/id_ed25519.pub)."),
    _o("progress_url", "--progress-url", str | None, None,
       "Webhook for progress events (default PROGRESS_WEBHOOK_URL). Never stored: "
       "give it again to `resume`; .env keeps it out of the process list."),
    _o("discord_webhook_url", ("--discord-webhook-url", "--discord-webhook"), str | None, None,
       "Discord webhook for progress events (default DISCORD_WEBHOOK_URL). Never "
       "stored: give it again to `resume`; .env keeps it out of the process list."),
    _o("ssh_timeout_min", "--ssh-timeout-min", int, 20,
       "Minutes to wait for the pod's SSH port."),
    _o("debug_remote", "--debug-remote", bool, False,
       "Trace the remote scripts (set -x; secrets are never traced)."),
    _o("transformers_from_git", "--transformers-from-git", bool, False,
       "Install transformers from git HEAD on the pod."),
    _o("transformers_version", "--transformers-version", str | None, None,
       "Install this transformers version on the pod ('git' for HEAD)."),
    _o("trust_remote_code", "--trust-remote-code", bool, False, "Trust the model's custom code."),
    _o("custom_dependencies", "--custom-dependencies", str | None, None,
       "Extra pip requirements for the pod, comma-separated."),
    _o("trainer", "--trainer", str, "openr1", "Trainer: openr1 (Open R1) or trl (plain TRL)."),
    _o("gpu_strategy", "--gpu-strategy", str, "priority",
       "GPU choice: priority (L40S, A100 SXM, H100 SXM, then by price) or cheapest."),
    _o("max_price", "--max-price", float | None, None,
       "Most the pod may cost, in USD per hour."),
    _o("max_hours", "--max-hours", float | None, None,
       "Terminate the pod after this many hours, whatever happens (default: from the plan)."),
    _o("max_cost", "--max-cost", float | None, None,
       "Stop and clean up before the pod's cost (price x uptime) passes this many USD."),
    _o("watchdog_grace", "--watchdog-grace", float, 120.0,
       "Seconds the pod's watchdog waits, after the job ends unfollowed, before terminating it."),
    _o("detach", "--detach", bool, False,
       "Return once training has started; `thinnka resume` or `recover` finish the run."),
    _o("overrides", "--set", list[str] | None, None,
       "Override a key of the rendered training recipe: KEY=VALUE (repeatable)."),
)  # fmt: skip

COMMON_OPTIONS: tuple[OptionSpec, ...] = (
    _o("env_file", "--env-file", str | None, None,
       "Read settings from this .env file (default: .env from here upward)."),
    _o("log_json", "--log-json", bool, False, "Log JSON lines to stderr even on a terminal."),
)  # fmt: skip

_CHOICES = {
    "cloud_type": ("ALL", "SECURE", "COMMUNITY"),
    "attn_implementation": ("sdpa", "flash_attention_2", "eager"),
    "trainer": ("openr1", "trl"),
    "gpu_strategy": ("priority", "cheapest"),
}


def _parameter(spec: OptionSpec) -> inspect.Parameter:
    option = typer.Option(*spec.flags, help=spec.help, show_default=spec.default not in (None, ()))
    return inspect.Parameter(
        spec.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=spec.default,
        annotation=Annotated[spec.type, option],
    )


def with_options(
    *specs: tuple[OptionSpec, ...],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Append the given option tables to a command's signature."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func)
        params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        params += [_parameter(spec) for table in specs for spec in table]
        func.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        return func

    return decorate


def options_from_kwargs(values: dict[str, Any]) -> RunOptions:
    """Build ``RunOptions`` from parsed CLI values (choices and lists checked here)."""
    from thinnka.errors import ConfigError

    data = {spec.name: values[spec.name] for spec in RUN_OPTIONS}
    for name, allowed in _CHOICES.items():
        if data[name] not in allowed:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be one of {', '.join(allowed)}; got {data[name]!r}.")
    data["chat_template"] = _read_chat_template(data["chat_template"])
    data["custom_dependencies"] = parse_custom_dependencies(data["custom_dependencies"])
    data["overrides"] = parse_overrides(data["overrides"] or [])
    return RunOptions(**data)


def _read_chat_template(value: str | None) -> str | None:
    """A path is read now, so the run stores the template itself and resume needs no file."""
    from pathlib import Path

    from thinnka.errors import ConfigError
    from thinnka.values import MAX_CHAT_TEMPLATE_CHARS

    if value is None or "\n" in value or "{" in value or "\x00" in value:
        return value
    try:
        path = Path(value).expanduser()
        if not path.is_file():
            return value
    except (OSError, RuntimeError):  # a name too long, ~nosuchuser: it is template text
        return value
    try:
        # At most 4 bytes per character: a bigger file cannot pass the cap, so never read it.
        if path.stat().st_size > 4 * MAX_CHAT_TEMPLATE_CHARS:
            raise ConfigError(f"--chat-template file {value!r} is too large for a template.")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--chat-template file {value!r} is not UTF-8 text.") from None
    except OSError as exc:
        raise ConfigError(
            f"--chat-template file {value!r} cannot be read ({exc.strerror})."
        ) from None
