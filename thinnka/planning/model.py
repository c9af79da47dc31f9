"""What the estimate needs to know about a model, from the Hub's published facts.

Parameter counts come from safetensors metadata when the Hub has it, else from
the weight files (one format only: duplicate formats are not double counted),
else from the architecture in ``config.json``. Pure: no downloads, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from thinnka.errors import PreflightError

__all__ = ["ModelFacts"]

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
