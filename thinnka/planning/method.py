"""What trains and how it is spread: the method (full, LoRA, QLoRA) and DeepSpeed's stage.

Two of ``TrainingPlan``'s decisions (``planning/training.py``), apart because each weighs
many option combinations. Both append the reasons for their choice to ``notes`` (shown by
``thinnka plan``) and raise ``ConfigError`` for a combination that cannot work. Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from thinnka.errors import ConfigError

if TYPE_CHECKING:
    from thinnka.options import RunOptions
    from thinnka.planning.overrides import Overrides
    from thinnka.planning.stacks import TrainerStack

__all__ = ["Method", "VllmMode", "choose_method", "zero_stage"]

Method = Literal["full", "lora", "qlora"]
VllmMode = Literal["colocate", "server"]


def choose_method(
    options: RunOptions, o: Overrides, notes: list[str], vllm_mode: VllmMode | None
) -> tuple[Method, Literal["4bit", "8bit"] | None, VllmMode | None]:
    """(method, quantization, vLLM mode): what is trained, and on which base weights."""
    load4, load8 = o.get("load_in_4bit"), o.get("load_in_8bit")
    peft = o.get("use_peft")
    asked_quant = bool(load4 or load8)
    if load4 and load8:
        raise ConfigError("load_in_4bit and load_in_8bit exclude each other; set one.")
    if options.shard_model or options.multi_node:
        # --nodes shards like --shard-model: a cluster exists to hold what one pod cannot.
        flag = "--shard-model" if options.shard_model else "--nodes"
        if asked_quant:
            raise ConfigError(
                f"{flag} means ZeRO-3, and 4-bit/8-bit loading (QLoRA) cannot run under "
                f"ZeRO-3. Drop {flag} or the load_in_4bit/load_in_8bit override."
            )
        if peft:
            notes.append(f"{flag} with use_peft=true: LoRA adapters under ZeRO-3.")
            return "lora", None, vllm_mode
        notes.append(
            f"{options.mode.upper()}: full fine-tuning, sharded by ZeRO-3 ({flag}; no QLoRA)."
        )
        return "full", None, vllm_mode
    if peft is False:
        if asked_quant:
            raise ConfigError(
                "4-bit/8-bit loading trains LoRA adapters only; use_peft=false needs "
                "load_in_4bit/load_in_8bit unset."
            )
        notes.append("use_peft=false (--set): full fine-tuning of every weight.")
        return "full", None, vllm_mode
    quant: Literal["4bit", "8bit"] | None = "8bit" if load8 else None if load4 is False else "4bit"
    if options.sft:
        if quant is None:
            notes.append("SFT: LoRA adapters on a bf16 base (load_in_4bit=false).")
        else:
            notes.append(
                f"SFT: QLoRA (LoRA adapters on a {quant[0]}-bit base); --shard-model trains the "
                "full model under ZeRO-3 instead."
            )
        return ("qlora" if quant else "lora"), quant, None
    if vllm_mode is not None and quant is not None:
        if not asked_quant:
            notes.append(
                "GRPO: LoRA adapters on a bf16 base, not QLoRA: TRL's weight sync into vLLM "
                "fails on a 4-bit base (trl #3654, #4973). --no-vllm trains QLoRA (generating "
                "with transformers); --shard-model trains the full model under ZeRO-3."
            )
            return "lora", None, vllm_mode
        if options.use_vllm is True or options.vllm_mode is not None or o.get("use_vllm"):
            raise ConfigError(
                "GRPO with 4-bit/8-bit loading cannot use vLLM (the adapter merge fails vLLM's "
                "weight-shape check, trl #3654). Use --no-vllm, or drop load_in_4bit for bf16 "
                "LoRA."
            )
        notes.append(
            "GRPO with 4-bit loading cannot use vLLM (trl #3654); generating with "
            "transformers instead (use_vllm: false)."
        )
        vllm_mode = None
    if quant is None:
        notes.append("GRPO: LoRA adapters on a bf16 base (load_in_4bit=false).")
        return "lora", None, vllm_mode
    notes.append(
        f"GRPO: QLoRA (LoRA adapters on a {quant[0]}-bit base), generating with transformers "
        "(no vLLM); --shard-model trains the full model under ZeRO-3 instead."
    )
    return "qlora", quant, vllm_mode


def zero_stage(
    options: RunOptions,
    stack: TrainerStack,
    notes: list[str],
    processes: int,
    quantization: str | None,
    vllm_mode: VllmMode | None,
    use_cpu: bool,
) -> Literal[2, 3] | None:
    """DeepSpeed's stage, or None to run without DeepSpeed.

    The original's rules: ``--shard-model`` forces ZeRO-3, and a quantized base drops
    ZeRO-3 to ZeRO-2 (Open R1 loads 4-bit with a ``device_map``, which transformers refuses
    under ZeRO-3).

    One training process runs without DeepSpeed (ZeRO shards nothing across one rank),
    except GRPO with colocated vLLM, whose engine needs the torch.distributed environment
    that only the DeepSpeed launcher sets up for a single process.
    """
    if use_cpu:
        notes.append("use_cpu: one CPU process, no DeepSpeed.")
        return None
    if processes == 1 and vllm_mode != "colocate":
        notes.append("One training process: no DeepSpeed (ZeRO has nothing to shard across).")
        return None
    stage: Literal[2, 3] = 3 if options.deepspeed_stage == 3 else 2
    if options.shard_model or options.multi_node:
        if stage != 3:
            notes.append("Model sharding enabled; forcing ZeRO-3.")
        stage = 3
    elif quantization and stage == 3:
        stage = 2
        what = "QLoRA SFT is" if options.sft else "4-bit/8-bit loading is"
        notes.append(
            f"{what} incompatible with ZeRO-3; using ZeRO-2 instead.{stack.quantized_zero3_note}"
        )
    if processes == 1:
        notes.append(
            f"One training process with colocated vLLM: kept under the DeepSpeed launcher "
            f"(ZeRO-{stage}), which sets up the torch.distributed environment vLLM's engine needs."
        )
    return stage
