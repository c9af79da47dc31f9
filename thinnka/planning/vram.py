"""Per-GPU memory estimate for one training plan (the formula set of docs vram.md §4).

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
from typing import TYPE_CHECKING, Any, Literal

from thinnka.errors import PreflightError

if TYPE_CHECKING:
    from thinnka.options import RunOptions

__all__ = ["GB", "MemoryEstimate", "ModelFacts", "TrainingShape", "estimate", "shape_for"]

GB = 10**9
MARGIN = 0.10  # vram.md §4 E: start at 10% and tune against max_memory_reserved()
CUDA_OVERHEAD = 2 * GB  # CUDA context + NCCL buffers, the worked example's 2 GB
VLLM_RUNTIME = 1.5 * GB  # vLLM's own buffers and profiling peak beyond weights and KV
VLLM_SERVER_UTILIZATION = 0.9  # `trl vllm-serve --gpu_memory_utilization` default
TRL_VLLM_UTILIZATION = 0.3  # TRL's colocate default, kept when it leaves room for both
NF4_BYTES = 0.516  # 4-bit NF4 + double-quantized constants (QLoRA paper)
ADAPTER_BYTES = 16  # fp32 adapter weight + grad + two Adam moments
LOGIT_COPIES = 2  # fp32 logits plus their log-softmax (or gradient)
# Korthikanti et al.: 34·s·b·h per layer = attention 11 + norms 4 (15) + a 4h MLP 19.
ACT_ATTN_SHARE = 15
ACT_MLP_SHARE = 19

# Families whose MLP is a plain up/down pair; everything else is taken to be gated
# (SwiGLU/GeGLU: gate, up, down), which is the conservative default.
_PLAIN_MLP = frozenset(
    {"gpt2", "gpt_neox", "gptj", "gpt_bigcode", "opt", "bloom", "falcon", "phi", "mpt"}
)
# Families whose config.json may omit tie_word_embeddings because the default is True.
_TIED_BY_DEFAULT = frozenset({"gemma", "gemma2", "gemma3_text", "gpt2"})
_QKV_BIAS = frozenset({"qwen2", "qwen2_moe"})
_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}
# config.json spellings of the same number across architectures.
_ALIASES: dict[str, tuple[str, ...]] = {
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads"),
    "num_key_value_heads": ("num_key_value_heads", "num_kv_heads"),
    "head_dim": ("head_dim",),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim"),
    "vocab_size": ("vocab_size",),
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
_NOT_WEIGHTS = ("training_args", "optimizer", "scheduler", "rng_state", "trainer_state", "adapter_")


@dataclass(frozen=True)
class _Arch:
    """Architecture numbers with every gap filled; ``guessed`` when config had none."""

    layers: int
    hidden: int
    heads: int
    q: int  # query projection width (heads · head_dim)
    kv: int  # key/value projection width (kv heads · head_dim)
    inter: int
    vocab: int
    tied: bool
    gated: bool
    guessed: bool


@dataclass(frozen=True)
class ModelFacts:
    """What the estimate needs to know about a model; only the parameter count is required."""

    num_parameters: int
    parameters_by_dtype: tuple[tuple[str, int], ...] = ()
    num_hidden_layers: int | None = None
    hidden_size: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    tie_word_embeddings: bool | None = None
    model_type: str | None = None
    source: Literal["safetensors", "files", "config", "given"] = "given"

    @classmethod
    def from_hub(
        cls,
        safetensors_total: int | None,
        safetensors_parameters: dict[str, int] | None,
        weight_files: list[tuple[str, int]],
        config: dict[str, Any] | None,
    ) -> ModelFacts:
        """Build facts from ``model_info(files_metadata=True)`` pieces and ``config.json``.

        Precedence: safetensors parameter counts, then weight-file bytes (one format
        only, see ``_pick_weight_files``) divided by the config's dtype width, then the
        count derived from the architecture. Raises ``PreflightError`` when none works.
        """
        cfg = _text_config(config or {})
        arch = _arch_fields(cfg)
        by_dtype = tuple(sorted((safetensors_parameters or {}).items()))
        count: int | None = None
        source: Literal["safetensors", "files", "config"] = "safetensors"
        if safetensors_total:
            count = int(safetensors_total)
        elif by_dtype:
            count = sum(n for _, n in by_dtype)
        else:
            picked = _pick_weight_files(weight_files)
            if picked:
                count, source = sum(size for _, size in picked) // _dtype_bytes(cfg), "files"
        derived = cls(1, **arch).config_parameters() if arch.get("hidden_size") else None
        # Pre-quantized repos (bnb, GPTQ, AWQ) pack several weights per stored element,
        # so their counts and sizes undercount; the architecture does not.
        quantized = bool(cfg.get("quantization_config"))
        if derived and (count is None or (quantized and derived > count)):
            count, source = derived, "config"
        if not count:
            raise PreflightError(
                "Cannot tell the model's size: no safetensors metadata, no weight files "
                "and no usable config.json.",
                reason="unknown_model_size",
            )
        return cls(count, by_dtype, **arch, source=source)

    # ------------------------------------------------------------ derived sizes
    @property
    def architecture_known(self) -> bool:
        return bool(self.hidden_size and self.num_hidden_layers)

    def _arch(self) -> _Arch:
        p = self.num_parameters
        # Without a config, assume a Llama-like shape (P ≈ 12·L·h², L ≈ h/128): rough,
        # but it keeps activations and logits from silently counting as zero.
        hidden = self.hidden_size or max(256, round((p * 128 / 12) ** (1 / 3)))
        layers = self.num_hidden_layers or max(1, round(hidden / 128))
        heads = self.num_attention_heads or max(1, hidden // 128)
        head_dim = self.head_dim or hidden // heads
        tied = self.tie_word_embeddings
        tied = self.model_type in _TIED_BY_DEFAULT if tied is None else tied
        return _Arch(
            layers=layers,
            hidden=hidden,
            heads=heads,
            q=heads * head_dim,
            kv=(self.num_key_value_heads or heads) * head_dim,
            inter=self.intermediate_size or 4 * hidden,
            vocab=self.vocab_size or 128_256,  # Llama-3's: large, so logits are not understated
            tied=tied,
            gated=self.model_type not in _PLAIN_MLP,
            guessed=not self.architecture_known,
        )

    def config_parameters(self) -> int:
        """Parameter count implied by the architecture alone (dense decoder)."""
        a = self._arch()
        bias = a.layers * (a.q + 2 * a.kv) if self.model_type in _QKV_BIAS else 0
        return self._embedding_config(a) + a.layers * _layer_linear(a) + bias

    @property
    def embedding_params(self) -> int:
        """P_emb: embeddings, lm_head, norms and biases; stays bf16 under QLoRA."""
        return self.num_parameters - self.linear_params

    @property
    def linear_params(self) -> int:
        """P_lin: parameters in quantizable linear layers (P minus the embedding side)."""
        return max(0, self.num_parameters - self._embedding_config(self._arch()))

    @property
    def layer_linear_params(self) -> int:
        """Linear parameters of one decoder layer (QLoRA's transient dequantized layer)."""
        return self.linear_params // self._arch().layers

    @property
    def largest_layer_params(self) -> int:
        """P_ll as DeepSpeed counts it: the largest module, usually the embedding."""
        a = self._arch()
        return max(a.vocab * a.hidden, self.layer_linear_params)

    def lora_params(self, r: int) -> int:
        """P_lora for all-linear targets: r · L · Σ(d_in + d_out)."""
        a = self._arch()
        mlp = (3 if a.gated else 2) * (a.hidden + a.inter)
        base = r * a.layers * (4 * a.hidden + 2 * a.q + 2 * a.kv + mlp)
        formula = a.layers * _layer_linear(a)
        # MoE and other layouts have far more linear weight than the dense formula sees
        # (biases alone are not worth it); all-linear LoRA adapts those too.
        ratio = self.linear_params / formula if formula else 1.0
        return int(base * ratio) if ratio > 1.1 else base

    @property
    def kv_bytes_per_token(self) -> int:
        """bf16 K and V for every layer: 2 · L · kv · 2."""
        a = self._arch()
        return 2 * a.layers * a.kv * 2

    def _embedding_config(self, a: _Arch) -> int:
        return a.vocab * a.hidden * (1 if a.tied else 2) + (2 * a.layers + 1) * a.hidden


def _layer_linear(a: _Arch) -> int:
    attn = a.hidden * a.q + 2 * a.hidden * a.kv + a.q * a.hidden
    return attn + (3 if a.gated else 2) * a.hidden * a.inter


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    # Multimodal configs keep the language model's numbers under text_config.
    text = config.get("text_config")
    return {**config, **text} if isinstance(text, dict) else dict(config)


def _arch_fields(cfg: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, keys in _ALIASES.items():
        value = next((cfg[k] for k in keys if isinstance(cfg.get(k), int) and cfg[k] > 0), None)
        fields[name] = value
    tie = cfg.get("tie_word_embeddings")
    fields["tie_word_embeddings"] = tie if isinstance(tie, bool) else None
    model_type = cfg.get("model_type")
    fields["model_type"] = model_type if isinstance(model_type, str) else None
    return fields


def _dtype_bytes(cfg: dict[str, Any]) -> int:
    dtype = cfg.get("torch_dtype") or cfg.get("dtype")
    return _DTYPE_BYTES.get(str(dtype).removeprefix("torch."), 2)


def _pick_weight_files(files: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """One copy of the weights: the best group present, in order of preference.

    Repos often ship the same weights several times (safetensors + pytorch_model.bin,
    Meta's ``original/consolidated.00.pth``, Mistral's ``consolidated.safetensors``,
    GGUF quantisations); the original summed them all. Groups: 0 top-level HF
    safetensors, 1 top-level ``pytorch_model*.bin``, 2 native consolidated/original
    checkpoints, 3 any other top-level .bin/.pt/.pth/.ckpt. GGUF is never counted: it
    is quantized and cannot be trained from anyway.
    """
    rows: list[tuple[int, str, int]] = []
    for name, size in files:
        low = name.lower()
        base = low.rsplit("/", 1)[-1]
        if not low.endswith(_WEIGHT_SUFFIXES) or base.startswith(_NOT_WEIGHTS):
            continue
        top, safetensors = "/" not in low, low.endswith(".safetensors")
        native = base.startswith("consolidated") or low.startswith("original/")
        if top and safetensors and not native:
            rows.append((0, name, size))
        elif top and base.startswith("pytorch_model") and low.endswith(".bin"):
            rows.append((1, name, size))
        elif native:
            rows.append((2, name, size))
        elif top and not safetensors:
            rows.append((3, name, size))
    best = min((group for group, _, _ in rows), default=None)
    return [(name, size) for group, name, size in rows if group == best]


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


def shape_for(options: RunOptions, trainer: str | None = None) -> TrainingShape:
    """The shape the recipes will actually train, from the user's options.

    - SFT is QLoRA (r 16, all-linear, nested quant) unless ``--shard-model``, which
      makes it a full fine-tune; GRPO is always a full fine-tune (the original's GRPO
      recipe has no PEFT keys).
    - ZeRO stage (original-tool.md §8.4): ``--shard-model`` forces 3; SFT QLoRA turns
      3 into 2 (4-bit loads fail under ZeRO-3 on Open R1); GRPO keeps the flag. On one
      GPU the stage stays, but N = 1 leaves nothing to shard.
    - vLLM server mode trains on ``gpu_count - 1`` processes (one GPU serves vLLM).
    - The colocate share is TRL's 0.3, which is what the pod runs with unless the
      recipe sets another (``--set vllm_gpu_memory_utilization=...`` does, and is
      honoured here). A shape with None instead lets ``vllm_utilization_for`` pick
      the share per GPU, which only holds if the recipe then writes that value.
    - ``beta`` follows the trainer's TRL: 0.04 on Open R1's TRL 0.18, 0.0 on newer TRL.
    - ``--set`` overrides of beta, vllm_gpu_memory_utilization, lora_r and
      gradient_checkpointing are honoured; the recipe renderer validates their types.
    """
    trainer = trainer or options.trainer
    sft = options.mode == "sft"
    method: Literal["full", "qlora"] = "full" if options.shard_model or not sft else "qlora"
    stage = 3 if options.shard_model else options.deepspeed_stage
    if method == "qlora" and stage == 3:
        stage = 2
    vllm = options.effective_vllm_mode
    processes = options.gpu_count - 1 if vllm == "server" else options.gpu_count
    over = dict(options.overrides)
    return TrainingShape(
        mode=options.mode,
        method=method,
        zero_stage=3 if stage == 3 else 2,
        num_processes=max(1, processes),
        per_device_batch=options.per_device_train_batch,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        prompt_length=options.max_prompt_length,
        completion_length=options.max_completion_length,
        num_generations=options.num_generations,
        vllm="server" if vllm == "server" else "colocate" if vllm else None,
        vllm_gpu_memory_utilization=_number(
            over, "vllm_gpu_memory_utilization", TRL_VLLM_UTILIZATION
        ),
        beta=_number(over, "beta", 0.04 if trainer == "openr1" else 0.0) or 0.0,
        gradient_checkpointing=over.get("gradient_checkpointing", "true").lower() != "false",
        lora_r=int(_number(over, "lora_r", 16) or 16),
        attn=options.attn_implementation,
    )


def _number(over: dict[str, str], key: str, default: float | None) -> float | None:
    try:
        return float(over[key]) if key in over else default
    except ValueError:
        return default


@dataclass(frozen=True)
class MemoryEstimate:
    """Per-GPU bytes by component, and the fit rule of vram.md §4 E.

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
    """Per-GPU memory for training ``facts`` as ``shape`` says (vram.md §4 A–E)."""
    a = facts._arch()
    p = facts.num_parameters
    n = shape.num_processes
    stage = shape.zero_stage
    b, s = shape.per_device_batch, shape.seq_length
    notes: list[str] = []
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
            frozen = NF4_BYTES * facts.linear_params + 2 * facts.embedding_params
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
