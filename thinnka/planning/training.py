"""Decide once, then emit: every training decision of a run, made in one place.

``decide`` turns the options and the merged ``--set`` overrides into one frozen
``TrainingPlan`` (method, quantization, ZeRO stage, vLLM mode, processes, stack,
transformers, entry point, notes). The renderer writes files from it, the memory estimate
(``planning/vram.py``) is computed from it and the setup values derive from it, so none of
them can disagree. Pure: the only things read are thinnka's own packaged data (the
trainer's key whitelist, the list of transformers releases).

Why GRPO trains as it does (docs/trainers.md, "LoRA and QLoRA"):

* Default: LoRA adapters, QLoRA (4-bit base) where it can work. TRL's weight sync into vLLM
  fails on a 4-bit base (trl #3654, #4973), so with vLLM (the default) the frozen base stays
  bf16 (LoRA); with ``--no-vllm`` it is 4-bit (QLoRA). SFT is QLoRA.
* ``--shard-model``: full fine-tuning under ZeRO-3, for GRPO and SFT alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from thinnka.errors import ConfigError
from thinnka.planning.chat import decide_chat
from thinnka.planning.method import Method, VllmMode, choose_method, zero_stage
from thinnka.planning.overrides import Overrides, typed_overrides
from thinnka.planning.rewards import plan_rewards
from thinnka.planning.stacks import TrainerStack, stack_for

if TYPE_CHECKING:
    from thinnka.options import RunOptions
    from thinnka.planning.chat import ChatDecision
    from thinnka.planning.facts import ModelContext
    from thinnka.planning.rewards import RewardPlan
    from thinnka.planning.versions import TransformersChoice

__all__ = ["Overrides", "TrainingPlan", "adjust_generations", "decide", "plan_training"]

TRL_VLLM_UTILIZATION = 0.3  # TRL's colocate default
_METHOD_TEXT = {
    "full": "full fine-tuning",
    "lora": "LoRA adapters on a bf16 base",
    "qlora": "QLoRA (LoRA adapters on a 4-bit base)",
}


@dataclass(frozen=True)
class TrainingPlan:
    """How one run trains; JSON-safe via ``to_json``."""

    stack: TrainerStack
    mode: Literal["grpo", "sft"]
    method: Method
    quantization: Literal["4bit", "8bit"] | None
    zero_stage: Literal[2, 3] | None  # None: no DeepSpeed
    vllm_mode: VllmMode | None
    processes: int  # training processes (server mode: the pod's GPUs minus vLLM's), all nodes
    gpu_count: int  # per pod (per node with --nodes)
    nodes: int  # 1: one pod; more: an Instant Cluster, one machine rank per node
    use_cpu: bool
    transformers: TransformersChoice
    entry_point: str  # what really trains: "open_r1.grpo", "trl sft", ...
    wrapper: str | None  # thinnka's launcher around it, when one is needed
    why_wrapper: str | None
    # Numbers the memory estimate and the recipe share.
    per_device_batch: int
    gradient_accumulation_steps: int
    prompt_length: int
    completion_length: int
    num_generations: int
    vllm_gpu_memory_utilization: float
    beta: float
    gradient_checkpointing: bool
    lora_r: int
    attn: str  # attn_implementation: sdpa, flash_attention_2 or eager
    liger_loss: bool
    chat: ChatDecision
    rewards: RewardPlan | None  # GRPO's default rewards (before --set reward_funcs)
    reward_names: tuple[str, ...]  # what the recipe's reward_funcs will say
    overrides: Overrides
    notes: tuple[str, ...]

    @property
    def fold_system(self) -> bool:
        return self.chat.fold_system

    @property
    def grpo(self) -> bool:
        return self.mode == "grpo"

    @property
    def peft(self) -> bool:
        return self.method != "full"

    @property
    def accelerate_config(self) -> str:
        """recipes/accelerate/<name>.yaml"""
        return "single" if self.zero_stage is None else f"zero{self.zero_stage}"

    @property
    def summary(self) -> str:
        """One line: what trains and how, e.g. ``GRPO, LoRA ... , vLLM colocate, ZeRO-3``."""
        parts = [self.mode.upper(), _METHOD_TEXT[self.method]]
        if self.quantization == "8bit":
            parts[-1] = "LoRA adapters on an 8-bit base"
        if self.grpo:
            parts.append(f"vLLM {self.vllm_mode}" if self.vllm_mode else "transformers generation")
        parts.append(f"ZeRO-{self.zero_stage}" if self.zero_stage else "no DeepSpeed")
        unit = "CPU process" if self.use_cpu else "training process"
        parts.append(f"{self.processes} {unit}{'es' if self.processes > 1 else ''}")
        if self.nodes > 1:
            parts.append(f"on {self.nodes} nodes")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "stack": self.stack.name,
            "mode": self.mode,
            "method": self.method,
            "quantization": self.quantization,
            "zero_stage": self.zero_stage,
            "vllm_mode": self.vllm_mode,
            "processes": self.processes,
            "nodes": self.nodes,
            "entry_point": self.entry_point,
            "wrapper": self.wrapper,
            "transformers": {"spec": self.transformers.spec, "reason": self.transformers.reason},
        }


def adjust_generations(requested: int, effective: int) -> int | None:
    """The largest d with 2 ≤ d ≤ requested that divides ``effective``; None if none does."""
    for d in range(min(requested, effective), 1, -1):
        if effective % d == 0:
            return d
    return None


def decide(
    options: RunOptions,
    overrides: Overrides,
    chat: ChatDecision,
    *,
    model_transformers_version: str | None,
    rewards: RewardPlan | None = None,
) -> TrainingPlan:
    """The training plan of a run; ``ConfigError`` for a combination that cannot work."""
    from thinnka.planning.versions import choose_transformers

    stack = stack_for(options.trainer)
    o = overrides
    grpo = not options.sft
    notes: list[str] = [*chat.notes, *o.notes]
    use_cpu = bool(o.get("use_cpu", False))

    vllm_mode = _vllm_mode(options, o, stack, notes, use_cpu=use_cpu) if grpo else None
    method, quantization, vllm_mode = choose_method(options, o, notes, vllm_mode)
    per_node = options.gpu_count - 1 if vllm_mode == "server" else options.gpu_count
    if use_cpu:
        per_node = 1
    # Across an Instant Cluster's nodes every process is one rank of one process group.
    processes = per_node * options.nodes
    stage = zero_stage(options, stack, notes, processes, quantization, vllm_mode, use_cpu)

    per_device = int(o.get("per_device_train_batch_size", options.per_device_train_batch))
    accumulation = int(o.get("gradient_accumulation_steps", options.gradient_accumulation_steps))
    generations = int(o.get("num_generations", options.num_generations))
    if grpo:
        generations = _generations(
            per_device, processes, accumulation, generations, "num_generations" in o, notes
        )
    prompt = int(o.get("max_prompt_length", options.max_prompt_length))
    completion = int(o.get("max_completion_length", options.max_completion_length))
    if not grpo and "max_length" in o:
        prompt, completion = 0, int(o.get("max_length"))
    default_rewards = rewards.names if rewards else ()
    reward_names = tuple(str(n) for n in o.get("reward_funcs", default_rewards)) if grpo else ()

    attn = str(o.get("attn_implementation", options.attn_implementation))
    choice = choose_transformers(
        options, stack.name, model_transformers_version, deepspeed=stage is not None
    )
    if attn == "flash_attention_2" and stack.flash_attn_kernels:
        choice = _with_kernels(choice)
    if options.merge_model and method == "full":
        raise ConfigError("--merge-model merges a LoRA adapter, but use_peft was set to false.")

    from thinnka.planning.datarules import evaluation_on

    wrapper, why = _wrapper(stack, chat.fold_system, reward_names, evaluation_on(options))
    return TrainingPlan(
        stack=stack,
        mode=options.mode,
        method=method,
        quantization=quantization,
        zero_stage=stage,
        vllm_mode=vllm_mode,
        processes=processes,
        gpu_count=options.gpu_count,
        nodes=options.nodes,
        use_cpu=use_cpu,
        transformers=choice,
        entry_point=stack.entry_point(options.mode),
        wrapper=wrapper,
        why_wrapper=why,
        per_device_batch=per_device,
        gradient_accumulation_steps=accumulation,
        prompt_length=prompt,
        completion_length=completion,
        num_generations=generations,
        vllm_gpu_memory_utilization=float(
            o.get("vllm_gpu_memory_utilization", TRL_VLLM_UTILIZATION)
        ),
        beta=float(o.get("beta", stack.default_beta)),
        gradient_checkpointing=bool(o.get("gradient_checkpointing", True)),
        lora_r=int(o.get("lora_r", 16)),
        attn=attn,
        liger_loss=bool(o.get("use_liger_loss", False)),
        chat=chat,
        rewards=rewards if grpo else None,
        reward_names=reward_names,
        overrides=o,
        notes=tuple(notes),
    )


def _vllm_mode(
    options: RunOptions, o: Overrides, stack: TrainerStack, notes: list[str], *, use_cpu: bool
) -> VllmMode | None:
    asked = o.get("use_vllm")
    enabled = options.vllm_enabled if asked is None else bool(asked)
    if not enabled:
        return None
    mode = o.get("vllm_mode", options.effective_vllm_mode)
    if mode is None:
        # use_vllm came from --set without a mode: write thinnka's default down, because the
        # trainers disagree on theirs (TRL 0.18: server, TRL 1.x: colocate).
        mode = "colocate"
        notes.append("use_vllm without vllm_mode: using colocate (written into the recipe).")
    if use_cpu:
        raise ConfigError("vLLM needs a GPU: with use_cpu=true pass --no-vllm.")
    if mode != "server":
        return "colocate"
    if options.gpu_count < 2:
        raise ConfigError("vLLM server mode needs --gpu-count 2 or more (one GPU serves vLLM).")
    if not stack.serve_remote_code and (
        options.trust_remote_code or o.get("trust_remote_code", False)
    ):
        raise ConfigError(
            f"TRL {stack.trl_version}'s `trl vllm-serve` (Open R1's pin) has no "
            "--trust_remote_code, so a model that needs remote code cannot be served. Use "
            "--vllm-mode colocate or --trainer trl."
        )
    last = options.gpu_count - 1
    notes.append(
        f"vLLM server mode: `trl vllm-serve` on GPU 0, training on GPUs 1-{last} with "
        f"num_processes {last}."
    )
    return "server"


def _generations(
    per_device: int,
    processes: int,
    accumulation: int,
    requested: int,
    explicit: bool,
    notes: list[str],
) -> int:
    """GRPO's batch rule: TRL wants the effective batch divisible by num_generations."""
    effective = per_device * processes * accumulation
    formula = f"{per_device} per device × {processes} process(es) × {accumulation} accumulation"
    if requested < 2:
        raise ConfigError("num_generations must be at least 2: GRPO compares generations.")
    if effective % requested == 0:
        return requested
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
    notes.append(
        f"Adjusted num_generations from {requested} to {adjusted} to divide the effective batch "
        f"{effective} ({formula})."
    )
    return adjusted


def _wrapper(
    stack: TrainerStack, fold_system: bool, rewards: tuple[str, ...], evaluating: bool = False
) -> tuple[str | None, str | None]:
    if stack.always_wrapped:
        return stack.launcher, (
            "thinnka's launcher runs TRL's own script with what it lacks (prompt column, "
            "system prompt, chat template, dataset fraction, held-out scores, resume)"
        )
    reasons = []
    if fold_system:
        reasons.append("folds the system prompt into the first user turn")
    if any("." in name for name in rewards):
        # Open R1's registry only takes names: dotted ones need the wrapper to import them.
        reasons.append("imports the dotted reward functions")
    if evaluating:
        reasons.append("scores the held-out split before and after training")
    if not reasons:
        return None, None
    return stack.launcher, f"thinnka's launcher {' and '.join(reasons)}"


def _with_kernels(choice: TransformersChoice) -> TransformersChoice:
    """flash_attention_2 from the prebuilt kernels-community/flash-attn2 Hub kernel, which
    transformers 5 loads via `kernels` (the stack installs no flash-attn wheel)."""
    from thinnka.planning.versions import TransformersChoice

    if not choice.spec:
        return choice
    spec = choice.spec.replace("transformers", "transformers[kernels]", 1)
    if choice.from_git:
        spec = f"transformers[kernels] @ {choice.spec}"
    reason = choice.reason + " With the `kernels` extra for flash_attention_2."
    return TransformersChoice(spec, choice.version, reason, choice.from_git)


def plan_training(options: RunOptions, model: ModelContext) -> TrainingPlan:
    """The run's one ``TrainingPlan``: what the estimate, the recipe and the setup share."""
    stack = stack_for(options.trainer)
    chat = decide_chat(options, model)
    rewards = None if options.sft else plan_rewards(options, stack)
    return decide(
        options,
        typed_overrides(options),
        chat,
        model_transformers_version=model.transformers_version,
        rewards=rewards,
    )
