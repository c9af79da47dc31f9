"""The rules a recipe must obey before it reaches a GPU, each with a visible note or a refusal.

* GRPO batch rule (open-r1.md §3.4): per-device batch × processes × accumulation must be
  divisible by num_generations, and num_generations ≥ 2.
* QLoRA never under ZeRO-3 (Open R1 always passes a device_map for 4-bit, which ZeRO-3
  refuses, open-r1.md §5; thinnka applies the same rule to the TRL stack rather than rely on
  an untested path), and GRPO + QLoRA never with vLLM (weight-sync shape assertion).
* DeepSpeed stage (original-tool.md §8.4): --shard-model forces 3; QLoRA SFT drops 3 to 2;
  GRPO keeps the flag. One training process runs without DeepSpeed (ZeRO shards nothing
  across one rank), except GRPO with colocated vLLM, whose engine needs the torch.distributed
  environment that only the DeepSpeed launcher sets up for a single process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thinnka.errors import ConfigError

if TYPE_CHECKING:
    from thinnka.options import RunOptions

__all__ = ["Placement", "adjust_generations", "batch_rule", "check_vllm", "is_quantized", "place"]


def adjust_generations(requested: int, effective: int) -> int | None:
    """The largest d with 2 ≤ d ≤ requested that divides ``effective``; None if none does."""
    for d in range(min(requested, effective), 1, -1):
        if effective % d == 0:
            return d
    return None


def batch_rule(recipe: dict[str, Any], processes: int, *, explicit: bool) -> list[str]:
    """Check (and, unless the user --set num_generations, adjust) GRPO's batch arithmetic."""
    per_device = int(recipe.get("per_device_train_batch_size", 8))
    accumulation = int(recipe.get("gradient_accumulation_steps", 1))
    requested = int(recipe.get("num_generations", 8))
    effective = per_device * processes * accumulation
    formula = f"{per_device} per device × {processes} process(es) × {accumulation} accumulation"
    if requested < 2:
        raise ConfigError("num_generations must be at least 2: GRPO compares generations.")
    if effective % requested == 0:
        return []
    if explicit:
        raise ConfigError(
            f"num_generations {requested} does not divide the effective batch {effective} "
            f"({formula}). Pick a divisor of {effective}, or change --per-device-train-batch "
            "/ --gradient-accumulation-steps."
        )
    adjusted = adjust_generations(requested, effective)
    if adjusted is None:
        raise ConfigError(
            f"GRPO needs an effective batch divisible by num_generations ≥ 2, but it is "
            f"{effective} ({formula}). Raise --per-device-train-batch or "
            "--gradient-accumulation-steps (e.g. --gradient-accumulation-steps 2)."
        )
    recipe["num_generations"] = adjusted
    return [
        f"Adjusted num_generations from {requested} to {adjusted} to divide the effective batch "
        f"{effective} ({formula})."
    ]


def is_quantized(recipe: dict[str, Any]) -> bool:
    return bool(recipe.get("load_in_4bit") or recipe.get("load_in_8bit"))


@dataclass(frozen=True)
class Placement:
    config: str  # "single", "zero2" or "zero3" (recipes/accelerate/<config>.yaml)
    stage: int | None  # ZeRO stage, None without DeepSpeed
    notes: tuple[str, ...]


def place(
    options: RunOptions,
    recipe: dict[str, Any],
    processes: int,
    *,
    vllm_mode: str | None,
    trainer: str,
) -> Placement:
    """The accelerate config and ZeRO stage of the final recipe."""
    notes: list[str] = []
    quantized = is_quantized(recipe)
    if options.shard_model and quantized:
        raise ConfigError(
            "--shard-model means ZeRO-3, and 4-bit/8-bit loading (QLoRA) cannot run under "
            "ZeRO-3. Drop --shard-model or the load_in_4bit/load_in_8bit override."
        )
    if recipe.get("use_cpu"):
        return Placement("single", None, ("use_cpu: one CPU process, no DeepSpeed.",))
    if options.shard_model and options.sft:
        notes.append("Sharded SFT enabled; disabling QLoRA.")
    if processes == 1 and vllm_mode != "colocate":
        notes.append("One training process: no DeepSpeed (ZeRO has nothing to shard across).")
        return Placement("single", None, tuple(notes))
    stage = options.deepspeed_stage
    if options.shard_model:
        if stage != 3:
            notes.append("Model sharding enabled; forcing ZeRO-3.")
        stage = 3
    elif quantized and stage == 3:
        stage = 2
        if options.sft:
            note = "QLoRA SFT is incompatible with ZeRO-3; using ZeRO-2 instead."
        else:
            note = "4-bit/8-bit loading is incompatible with ZeRO-3; using ZeRO-2 instead."
        if trainer == "trl":
            note += " (The TRL stack keeps the rule proven on Open R1's pins.)"
        notes.append(note)
    if processes == 1:
        notes.append(
            f"One training process with colocated vLLM: kept under the DeepSpeed launcher "
            f"(ZeRO-{stage}), which sets up the torch.distributed environment vLLM's engine needs."
        )
    return Placement(f"zero{stage}", stage, tuple(notes))


def check_vllm(options: RunOptions, recipe: dict[str, Any]) -> list[str]:
    """GRPO + QLoRA cannot sync weights into vLLM: turn vLLM off, or refuse if it was asked."""
    if options.sft or not recipe.get("use_vllm") or not is_quantized(recipe):
        return []
    if options.use_vllm is True or options.vllm_mode is not None:
        raise ConfigError(
            "GRPO with 4-bit/8-bit loading cannot use vLLM (the adapter merge fails vLLM's "
            "weight-shape check, trl #3654). Use --no-vllm, or drop load_in_4bit for bf16 LoRA."
        )
    recipe["use_vllm"] = False
    for key in ("vllm_mode", "vllm_max_model_length", "vllm_server_host", "vllm_server_port"):
        recipe.pop(key, None)
    return [
        "GRPO with 4-bit loading cannot use vLLM (trl #3654); generating with "
        "transformers instead (use_vllm: false)."
    ]
