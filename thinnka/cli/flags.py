"""The flags of ``thinnka run`` and ``thinnka plan``, declared once as data.

Typer reads a command's options from its function signature; both commands
get the signature built here, so the two never drift apart. The table keeps
the original tool's flag names and aliases; each default and each set of choices
comes from ``RunOptions`` (the one definition), never written here again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import typer

from thinnka.options import RunOptions, parse_custom_dependencies, parse_overrides

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


def _option_defaults() -> dict[str, Any]:
    """``RunOptions``' defaults, as the CLI spells them (a list option not given is None)."""
    blank = RunOptions()
    values = {f.name: getattr(blank, f.name) for f in fields(RunOptions)}
    return {name: None if value == () else value for name, value in values.items()}


_DEFAULTS = _option_defaults()


def _run(name: str, flags: str | tuple[str, ...], type_: Any, help: str) -> OptionSpec:
    """A flag of a ``RunOptions`` field, with that field's default."""
    return _o(name, flags, type_, _DEFAULTS[name], help)


RUN_OPTIONS: tuple[OptionSpec, ...] = (
    _run("repo_id", "--repo-id", str,
         "Hugging Face model repo to fine-tune."),
    _run("gpu_count", "--gpu-count", int,
         "GPUs in the pod: 1, 2, 4, 6 or 8 (with --nodes: per node, 8)."),
    _run("nodes", "--nodes", int,
         "Train on a Runpod Instant Cluster of this many nodes (2-8) with ZeRO-3 across "
         "all their GPUs; 1 (the default) is one pod. REST v2 only."),
    _run("gpu_type", "--gpu-type", str | None,
         "Only GPUs whose name contains this text (case-insensitive), e.g. 'L40S'."),
    _run("image", "--image", str,
         "Container image of the pod."),
    _run("use_thinnka_image", "--use-thinnka-image", bool,
         "Use thinnka's image for the trainer (reeeon/thinnka:<trainer>, see docker/): "
         "the stack is installed already, so setup is skipped."),
    _run("pod_name", "--pod-name", str | None,
         "Pod name prefix (default thinnka-<model>-<N>x); the run id is always appended."),
    _run("cloud_type", "--cloud-type", str,
         "Runpod cloud: ALL, SECURE or COMMUNITY."),
    _run("volume_gb", "--volume-gb", int,
         "Persistent volume size in GB (0: sized from the model)."),
    _run("container_disk_gb", "--container-disk-gb", int | None,
         "Container disk in GB (default: sized from the model, at least 40)."),
    _run("min_vcpu", "--min-vcpu", int,
         "Minimum vCPUs of the pod."),
    _run("min_memory", "--min-memory", int,
         "Minimum system memory of the pod in GB."),
    # Given or not matters (--dataset-path excludes it), so the flag's default is None.
    _o("dataset_name", "--dataset-name", str | None, None,
       f"Training data set repo on the Hub (default {_DEFAULTS['dataset_name']}); "
       "not with --dataset-path."),
    _run("dataset_path", "--dataset-path", str | None,
         "Train on a local JSONL, JSON, CSV or Parquet file (or a folder of one format): "
         "checked here, uploaded to the pod over SFTP. Not with --dataset-name."),
    _run("dataset_prompt_column", "--dataset-prompt-column", str,
         "Column holding the prompt (GRPO)."),
    _run("reasoning_tag", "--reasoning-tag", str,
         "Tag that opens the reasoning (GRPO)."),
    _run("reasoning_end_tag", "--reasoning-end-tag", str,
         "Tag that closes the reasoning (GRPO)."),
    _run("answer_tag", "--answer-tag", str,
         "Tag that opens the final answer (GRPO)."),
    _run("answer_end_tag", "--answer-end-tag", str,
         "Tag that closes the final answer (GRPO)."),
    _run("chat_template", "--chat-template", str | None,
         "Chat template: a file path, or the template text itself."),
    _run("hub_model_id", "--hub-model-id", str | None,
         "Where to push the result (default <you>/<model>-<grpo|sft>-thinnka)."),
    _run("num_train_epochs", "--num-train-epochs", int,
         "Training epochs."),
    _run("max_steps", "--max-steps", int,
         "Stop after this many steps (-1: run the epochs)."),
    _run("per_device_train_batch", "--per-device-train-batch", int,
         "Per-device training batch size."),
    _run("gradient_accumulation_steps", "--gradient-accumulation-steps", int,
         "Gradient accumulation steps."),
    _run("num_generations", "--num-generations", int,
         "Completions per prompt (GRPO); adjusted to divide the batch."),
    _run("max_prompt_length", "--max-prompt-length", int,
         "Maximum prompt length in tokens."),
    _run("max_completion_length", "--max-completion-length", int,
         "Maximum completion length in tokens."),
    _run("dataset_fraction", "--dataset-fraction", float,
         "Train on this fraction of the data set (0 < f <= 1)."),
    _run("dataset_seed", "--dataset-seed", int,
         "Seed of the data set subsample (and of the held-out split)."),
    _run("eval_fraction", "--eval-fraction", float,
         "Hold out this share of the data (at most 200 rows) and score it before and "
         "after training; 0 turns evaluation off."),
    _run("eval_dataset_name", "--eval-dataset-name", str | None,
         "Score on this Hub data set (its train split, at most 200 rows) instead of a "
         "held-out share."),
    _run("eval_dataset_path", "--eval-dataset-path", str | None,
         "Score on this local file or folder (at most 200 rows) instead of a held-out share."),
    _run("eval_points", "--eval-points", int,
         "Also score the eval split this many times during training, evenly spaced (the "
         "report draws each score over the steps); 0: before and after only."),
    _run("sft", "--sft", bool,
         "Supervised fine-tuning instead of GRPO."),
    _run("shard_model", "--shard-model", bool,
         "Shard the model with ZeRO-3 (disables QLoRA for SFT)."),
    _run("merge_model", "--merge-model", bool,
         "SFT + QLoRA: merge the adapter into the base model and push the merged model."),
    _run("attn_implementation", "--attn-implementation", str,
         "Attention: sdpa, flash_attention_2 or eager."),
    _run("deepspeed_stage", "--deepspeed-stage", int,
         "DeepSpeed ZeRO stage: 2 or 3."),
    _run("use_vllm", ("--use-vllm/--no-vllm", " /--disable-vllm"), bool | None,
         "Generate with vLLM during GRPO (default on)."),
    _run("vllm_mode", "--vllm-mode", str | None,
         "vLLM placement: colocate (default) or server (one GPU serves vLLM)."),
    _run("report_to", "--report-to", str,
         "Experiment tracker: none, wandb or tensorboard."),
    _run("output_dir", "--output-dir", str | None,
         "Training output folder on the pod."),
    _run("skip_setup", "--skip-setup", bool,
         "Install nothing; check that the image has the trainer."),
    _run("dry_run", "--dry-run", bool,
         "Plan only, like `thinnka plan`: no pod is created."),
    _run("ssh_private_key", "--ssh-private-key", str | None,
         "Private key file for the pod (default SSH_PRIVATE_KEY_PATH, ~/.ssh/id_ed25519)."),
    _run("ssh_public_key", "--ssh-public-key", str | None,
         "Public key text for the pod (default SSH_PUBLIC_KEY, ~/.ssh/id_ed25519.pub)."),
    _run("progress_url", "--progress-url", str | None,
         "Webhook for progress events (default PROGRESS_WEBHOOK_URL). Never stored: "
         "give it again to `resume`; .env keeps it out of the process list."),
    _run("discord_webhook_url", ("--discord-webhook-url", "--discord-webhook"), str | None,
         "Discord webhook for progress events (default DISCORD_WEBHOOK_URL). Never "
         "stored: give it again to `resume`; .env keeps it out of the process list."),
    _run("ssh_timeout_min", "--ssh-timeout-min", int,
         "Minutes to wait for the pod's SSH port."),
    _run("debug_remote", "--debug-remote", bool,
         "Trace the remote scripts (set -x; secrets are never traced)."),
    _run("transformers_from_git", "--transformers-from-git", bool,
         "Install transformers from git HEAD on the pod."),
    _run("transformers_version", "--transformers-version", str | None,
         "Install this transformers version on the pod ('git' for HEAD)."),
    _run("trust_remote_code", "--trust-remote-code", bool,
         "Trust the model's custom code."),
    _run("custom_dependencies", "--custom-dependencies", str | None,
         "Extra pip requirements for the pod, comma-separated."),
    _run("trainer", "--trainer", str,
         "Trainer: openr1 (Open R1) or trl (plain TRL)."),
    _run("gpu_strategy", "--gpu-strategy", str,
         "GPU choice: priority (L40S, A100 SXM, H100 SXM, then by price) or cheapest."),
    _run("max_price", "--max-price", float | None,
         "Most the pod may cost, in USD per hour."),
    _run("max_hours", "--max-hours", float | None,
         "Terminate the pod after this many hours, whatever happens (default: from the plan)."),
    _run("max_cost", "--max-cost", float | None,
         "Stop and clean up before the pod's cost (price x uptime) passes this many USD."),
    _run("watchdog_grace", "--watchdog-grace", float,
         "Seconds the pod's watchdog waits, after the job ends unfollowed, before terminating it."),
    _run("detach", "--detach", bool,
         "Return once training has started; `thinnka resume` or `recover` finish the run."),
    _run("network_volume", "--network-volume", str | None,
         "Runpod network volume (by name) for caches and checkpoints: created in a data center "
         "with stock when absent (--volume-gb), reused when present, never deleted (REST v2)."),
    _run("max_restarts", "--max-restarts", int,
         "New pods after a pod is lost during training, resuming from the last checkpoint "
         "(0: the run fails with pod_lost instead)."),
    _run("overrides", "--set", list[str] | None,
         "Override a key of the rendered training recipe: KEY=VALUE (repeatable)."),
)  # fmt: skip

COMMON_OPTIONS: tuple[OptionSpec, ...] = (
    _o("env_file", "--env-file", str | None, None,
       "Read settings from this .env file (default: .env from here upward)."),
    _o("log_json", "--log-json", bool, False, "Log JSON lines to stderr even on a terminal."),
)  # fmt: skip

# The options whose type is a Literal accept only its values.
_CHOICES: dict[str, tuple[str, ...]] = {
    name: get_args(hint)
    for name, hint in get_type_hints(RunOptions).items()
    if get_origin(hint) is Literal
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
    _resolve_data_paths(data)
    data["custom_dependencies"] = parse_custom_dependencies(data["custom_dependencies"])
    data["overrides"] = parse_overrides(data["overrides"] or [])
    return RunOptions(**data)


def _resolve_data_paths(data: dict[str, Any]) -> None:
    """Local data paths become absolute (a resume from another folder finds them); a local
    data set leaves no Hub one (``dataset_name`` ""), and both given is refused."""
    from pathlib import Path

    from thinnka.errors import ConfigError

    for name in ("dataset_path", "eval_dataset_path"):
        if data.get(name):
            data[name] = str(Path(data[name]).expanduser().absolute())
    if data["dataset_path"] is not None and data["dataset_name"] is not None:
        raise ConfigError("--dataset-path and --dataset-name exclude each other; give one.")
    if data["dataset_name"] is None:
        data["dataset_name"] = "" if data["dataset_path"] else _DEFAULTS["dataset_name"]


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
