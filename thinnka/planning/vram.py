"""Per-GPU memory estimate for one training plan (the formulas are in docs/memory.md).

Pure arithmetic over numbers the Hub already publishes (safetensors metadata, file
sizes, ``config.json``): nothing is downloaded and no torch is imported, so a plan can
be checked before anything is rented.

Units: bytes inside, decimal GB (10**9 bytes) outside. Runpod's ``memoryInGb`` is
compared against as decimal GB because that is never optimistic: an L40S sold as
"48 GB" has 48.3e9 bytes, an RTX 4090 or H100 sold as "24"/"80" has more than 24e9/80e9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from thinnka.planning.model import ModelFacts

if TYPE_CHECKING:
    from thinnka.planning.training import TrainingPlan

__all__ = ["GB", "MemoryEstimate", "ModelFacts", "TrainingShape", "estimate", "shape_for"]

GB = 10**9
MARGIN = 0.10  # a starting value, to tune against measured max_memory_reserved()
CUDA_OVERHEAD = 2 * GB  # CUDA context + NCCL buffers, the worked example's 2 GB
VLLM_RUNTIME = 1.5 * GB  # vLLM's own buffers and profiling peak beyond weights and KV
VLLM_SERVER_UTILIZATION = 0.9  # `trl vllm-serve --gpu_memory_utilization` default
TRL_VLLM_UTILIZATION = 0.3  # TRL's colocate default, kept when it leaves room for both
NF4_BYTES = 0.516  # 4-bit NF4 + double-quantized constants (QLoRA paper)
INT8_BYTES = 1.0  # LLM.int8(): one byte per weight (its outlier columns stay small)
ADAPTER_BYTES = 16  # fp32 adapter weight + grad + two Adam moments
LOGIT_COPIES = 2  # fp32 logits plus their log-softmax (or gradient)
# Korthikanti et al.: 34·s·b·h per layer = attention 11 + norms 4 (15) + a 4h MLP 19.
ACT_ATTN_SHARE = 15
ACT_MLP_SHARE = 19


@dataclass(frozen=True)
class TrainingShape:
    """How the recipe will train: the inputs of the formulas besides the model."""

    mode: Literal["grpo", "sft"] = "grpo"
    method: Literal["full", "lora", "qlora"] = "full"
    zero_stage: Literal[0, 2, 3] = 0  # 0: no DeepSpeed sharding (single process or DDP)
    num_processes: int = 1  # training GPUs (server mode: pod GPUs minus the vLLM one)
    per_device_batch: int = 1
    gradient_accumulation_steps: int = 4
    prompt_length: int = 512
    completion_length: int = 2048
    num_generations: int = 16
    vllm: Literal["colocate", "server"] | None = None
    # None: thinnka picks the share per GPU (MemoryEstimate.vllm_utilization_for).
    vllm_gpu_memory_utilization: float | None = TRL_VLLM_UTILIZATION
    beta: float = 0.04  # TRL 0.18 (Open R1) default; newer TRL defaults to 0.0
    gradient_checkpointing: bool = True
    lora_r: int = 16
    attn: Literal["sdpa", "flash_attention_2", "eager"] = "sdpa"
    liger_loss: bool = False
    quant_bits: Literal[4, 8] = 4  # the frozen base under QLoRA: NF4 or int8
    label: str = ""  # what the plan trains, said in the estimate's notes

    def __post_init__(self) -> None:
        u = self.vllm_gpu_memory_utilization
        if u is not None and not 0 < u < 1:
            raise ValueError(f"vllm_gpu_memory_utilization must be in (0, 1), got {u}")
        if self.num_processes < 1 or self.per_device_batch < 1:
            raise ValueError("num_processes and per_device_batch must be 1 or more")

    @property
    def seq_length(self) -> int:
        """Tokens per sequence: SFT's max_seq_length, GRPO's prompt + completion."""
        return self.prompt_length + self.completion_length

    @property
    def loss_tokens(self) -> int:
        """Positions that get logits: GRPO keeps only the completion, SFT all of it."""
        return self.completion_length if self.mode == "grpo" else self.seq_length


def shape_for(plan: TrainingPlan) -> TrainingShape:
    """The estimator's inputs, copied from the run's ``TrainingPlan`` (no decision here).

    The plan is what the renderer writes too, so the estimate is made for the recipe that
    will run: ``--set load_in_4bit=false`` estimates a bf16 base, server mode estimates
    the GPUs left for training, ``--set beta=...`` the reference model, and so on.
    """
    attn: Literal["sdpa", "flash_attention_2", "eager"] = (
        "eager" if plan.attn == "eager" else "flash_attention_2"
        if plan.attn == "flash_attention_2" else "sdpa"
    )  # fmt: skip
    return TrainingShape(
        mode=plan.mode,
        method=plan.method,
        zero_stage=plan.zero_stage or 0,
        num_processes=plan.processes,
        per_device_batch=plan.per_device_batch,
        gradient_accumulation_steps=plan.gradient_accumulation_steps,
        prompt_length=plan.prompt_length,
        completion_length=plan.completion_length,
        num_generations=plan.num_generations,
        vllm=plan.vllm_mode,
        vllm_gpu_memory_utilization=plan.vllm_gpu_memory_utilization,
        beta=plan.beta,
        gradient_checkpointing=plan.gradient_checkpointing,
        lora_r=plan.lora_r,
        attn=attn,
        liger_loss=plan.liger_loss,
        quant_bits=8 if plan.quantization == "8bit" else 4,
        label=plan.summary,
    )


@dataclass(frozen=True)
class MemoryEstimate:
    """Per-GPU bytes by component, and the fit rule (docs/memory.md, "The fit rule").

    ``vllm`` is what vLLM must hold (bf16 weights + KV for the tokens in flight +
    runtime): in colocate mode on every training GPU, inside its share ``u·G``; in
    server mode on the one serving GPU, inside 0.9·G. Everything else is the training
    side, which must fit ``(1 - u)·G·(1 - margin)`` (u = 0 without colocate).
    """

    weights: int
    gradients: int
    optimizer: int
    lora_states: int
    activations: int
    logits: int
    reference_model: int
    generation: int  # GRPO without vLLM: KV cache, plus ZeRO-3's gathered weights
    cuda_overhead: int
    vllm: int
    vllm_mode: Literal["colocate", "server"] | None = None
    vllm_gpu_memory_utilization: float | None = None
    margin: float = MARGIN
    notes: tuple[str, ...] = ()

    @property
    def training(self) -> int:
        """Bytes on one training GPU for training itself (everything but vLLM)."""
        return (
            self.weights + self.gradients + self.optimizer + self.lora_states + self.activations
            + self.logits + self.reference_model + self.generation + self.cuda_overhead
        )  # fmt: skip

    @property
    def total(self) -> int:
        """Bytes on one training GPU, the colocated vLLM included."""
        return self.training + (self.vllm if self.vllm_mode == "colocate" else 0)

    @property
    def total_gb(self) -> float:
        return self.total / GB

    @property
    def total_gib(self) -> float:
        return self.total / 2**30

    def vllm_utilization_for(self, gpu_memory_gb: float) -> float | None:
        """The colocate share to run with on this GPU, or None if no share fits both sides.

        A fixed share is only checked. Otherwise TRL's 0.3 is kept when both sides fit
        with it, else the nearest value (two decimals) that does.
        """
        if self.vllm_mode != "colocate" or gpu_memory_gb <= 0:
            return None
        g = gpu_memory_gb * GB
        lo = self.vllm / g
        hi = 1 - self.training / (g * (1 - self.margin))
        if self.vllm_gpu_memory_utilization is not None:
            u = self.vllm_gpu_memory_utilization
            return u if lo <= u <= hi else None
        lo, hi = math.ceil(lo * 100 - 1e-9) / 100, math.floor(hi * 100 + 1e-9) / 100
        return min(max(TRL_VLLM_UTILIZATION, lo), hi) if lo <= hi else None

    def fits(self, gpu_memory_gb: float) -> bool:
        g = gpu_memory_gb * GB
        if self.vllm_mode == "colocate":
            return self.vllm_utilization_for(gpu_memory_gb) is not None
        if self.vllm_mode == "server" and self.vllm > g * VLLM_SERVER_UTILIZATION:
            return False
        return self.training <= g * (1 - self.margin)

    def required_gb(self) -> float:
        """Smallest GPU memory (GB, one decimal) that ``fits``: the value to filter on."""
        t = self.training / (1 - self.margin)
        u = self.vllm_gpu_memory_utilization
        if self.vllm_mode == "server":
            need = max(t, self.vllm / VLLM_SERVER_UTILIZATION)
        elif self.vllm_mode == "colocate":
            need = self.vllm + t if u is None else max(self.vllm / u, t / (1 - u))
        else:
            need = t
        gb = math.ceil(need / GB * 10) / 10
        # Rounding the share to two decimals can need a little more than the algebra.
        for _ in range(1000):
            if self.fits(gb):
                break
            gb = round(gb + 0.1, 1)
        return gb

    def breakdown(self, unit: Literal["GB", "GiB"] = "GB") -> list[tuple[str, float]]:
        """Non-zero components as (label, size) for a plan table; GB unless asked."""
        scale = GB if unit == "GB" else 2**30
        vllm_label = "vLLM share (colocate)" if self.vllm_mode == "colocate" else "vLLM server GPU"
        rows = [
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer states", self.optimizer),
            ("LoRA adapters (weights, grads, Adam)", self.lora_states),
            ("activations", self.activations),
            ("logits and loss", self.logits),
            ("reference model (beta > 0)", self.reference_model),
            ("generation without vLLM", self.generation),
            ("CUDA context and NCCL", self.cuda_overhead),
            (vllm_label, self.vllm),
        ]
        return [(label, size / scale) for label, size in rows if size]


def estimate(facts: ModelFacts, shape: TrainingShape) -> MemoryEstimate:
    """Per-GPU memory for training ``facts`` as ``shape`` says (docs/memory.md)."""
    a = facts._arch()
    p = facts.num_parameters
    n = shape.num_processes
    stage = shape.zero_stage
    b, s = shape.per_device_batch, shape.seq_length
    notes: list[str] = [f"Estimated for {shape.label}."] if shape.label else []
    if a.guessed:
        notes.append("config.json gave no architecture: activations and logits use a guess.")

    weights = grads = optim = lora = 0.0
    if shape.method == "full":
        # DeepSpeed's own estimators (ZeRO-2 4P + 16P/N, ZeRO-3 18P/N + 4·P_ll) rather
        # than the paper's, because they count the buffers DeepSpeed really allocates.
        if stage == 3:
            weights = 2 * p / n + 2 * facts.largest_layer_params
            grads, optim = 4 * p / n + 2 * facts.largest_layer_params, 12 * p / n
        elif stage == 2:
            weights, grads, optim = 2 * p, 2 * p + 4 * p / n, 12 * p / n
        else:
            weights, grads, optim = 2 * p, 2 * p, 12 * p
    else:
        adapters = facts.lora_params(shape.lora_r)
        frozen: float
        if shape.method == "lora":
            frozen, transient = 2 * p, 2 * facts.largest_layer_params
        else:
            per_weight = NF4_BYTES if shape.quant_bits == 4 else INT8_BYTES
            frozen = per_weight * facts.linear_params + 2 * facts.embedding_params
            transient = 2 * facts.layer_linear_params  # one layer dequantized to bf16
        if stage == 3:
            weights, lora = frozen / n + transient, ADAPTER_BYTES * adapters / n
        else:
            # Frozen weights are never sharded by ZeRO-2; only Adam's 12 bytes are.
            weights = frozen + (transient if shape.method == "qlora" else 0)
            lora = (4 + 12 / n) * adapters if stage == 2 else ADAPTER_BYTES * adapters
        if shape.method == "qlora" and stage == 3:
            notes.append("QLoRA under ZeRO-3 needs a patched stack; Open R1 cannot load it.")
        if shape.method == "qlora" and shape.mode == "grpo" and shape.vllm:
            notes.append("GRPO + 4-bit QLoRA + vLLM fails in TRL's weight sync (trl #3654).")

    # Activations: LoRA does not shrink them; gradient checkpointing keeps each layer's
    # input plus one layer being recomputed. SwiGLU MLPs wider than 4h store more.
    mlp_share = ACT_MLP_SHARE * max(1.0, a.inter / (4 * a.hidden))
    layer = (ACT_ATTN_SHARE + mlp_share) * s * b * a.hidden
    if shape.attn == "eager":
        layer += 5 * a.heads * s * s * b  # materialized attention scores
    if shape.gradient_checkpointing:
        activations = 2 * s * b * a.hidden * a.layers + layer
    else:
        activations = layer * a.layers
    logits = 0 if shape.liger_loss else LOGIT_COPIES * b * shape.loss_tokens * a.vocab * 4

    reference = generation = vllm = 0.0
    grpo = shape.mode == "grpo"
    if grpo and shape.beta > 0 and shape.method == "full":
        # With PEFT the reference is the base with adapters off: free.
        reference = 2 * p / n if stage == 3 else 2 * p
    # Completions one GPU generates per round: TRL generates a whole generation batch.
    round_tokens = b * shape.gradient_accumulation_steps * s
    if grpo and shape.vllm:
        in_flight = round_tokens * (n if shape.vllm == "server" else 1)
        vllm = 2 * p + facts.kv_bytes_per_token * in_flight + VLLM_RUNTIME  # ZeRO can't shard it
    elif grpo:
        generation = facts.kv_bytes_per_token * round_tokens
        if stage == 3 and shape.method != "qlora":
            generation += 2 * p * (1 - 1 / n)  # ds3_gather_for_generation gathers all weights
    return MemoryEstimate(
        weights=int(weights),
        gradients=int(grads),
        optimizer=int(optim),
        lora_states=int(lora),
        activations=int(activations),
        logits=int(logits),
        reference_model=int(reference),
        generation=int(generation),
        cuda_overhead=CUDA_OVERHEAD,
        vllm=int(vllm),
        vllm_mode=shape.vllm if grpo else None,
        vllm_gpu_memory_utilization=shape.vllm_gpu_memory_utilization,
        notes=tuple(notes),
    )
