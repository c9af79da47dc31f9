"""Random-weight Qwen2 models, a small tokenizer and tiny data sets, all built locally.

What ``gpu_calibration.py`` trains on. Nothing is downloaded: memory depends on the
architecture's shapes and the dtype, never on the weights' values, so a model built from
the published config numbers with random weights needs exactly what the real checkpoint
needs. The tokenizer is a small byte-level BPE with Qwen's ChatML tokens (a real Qwen
tokenizer is a download): its ids all lie inside every model's vocabulary, and the
calibration feeds token ids directly anyway. Only the stdlib is imported at module level.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

__all__ = [
    "CHATML_TEMPLATE",
    "QWEN2_SIZES",
    "build_tokenizer",
    "parameter_count",
    "qwen2_config",
    "save_random_model",
    "write_grpo_dataset",
    "write_sft_dataset",
]

# Qwen2 base models as their config.json files on the Hub describe them (Qwen/Qwen2-0.5B,
# Qwen/Qwen2-1.5B, Qwen/Qwen2-7B; the same numbers appear in the Qwen2 technical report's
# model table). Published parameter counts, which the built models reproduce exactly with
# Qwen2's q/k/v biases: 494,032,768 / 1,543,714,304 / 7,615,616,512. "tiny" is no Qwen
# release: the smallest shape that still runs every code path (GQA, tied embeddings) in
# seconds on a CPU, for the CPU test.
QWEN2_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
        "tie_word_embeddings": True,
    },
    "0.5b": {
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "1.5b": {
        "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
        "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "7b": {
        "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
}  # fmt: skip
# Shared by the three releases. The context length changes no memory here: transformers
# computes rotary embeddings per forward pass, for the positions present only.
_QWEN2_COMMON: dict[str, Any] = {
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "rope_theta": 1_000_000.0,
    "max_position_embeddings": 32768,
    "use_sliding_window": False,
}

# ChatML, as Qwen's instruct templates write it (without their tool-call branches).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def build_tokenizer() -> Any:
    """A ~400-token byte-level BPE with ChatML tokens and template (eos ``<|im_end|>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["the model answers questions about numbers step by step user assistant system"]
    corpus += [f"What is {a} + {b}? {a} + {b} = {a + b}. \\boxed{{{a + b}}}" for a in range(10)
               for b in range(10)]  # fmt: skip
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=list(_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    wrapped.chat_template = CHATML_TEMPLATE
    return wrapped


def qwen2_config(size: str, tokenizer: Any | None = None) -> Any:
    """The ``Qwen2Config`` of ``size``; with a tokenizer, its eos/pad ids (so that
    generation stops where this tokenizer says, as with the real checkpoint's)."""
    from transformers import Qwen2Config

    ids: dict[str, Any] = {"bos_token_id": None}
    if tokenizer is not None:
        ids.update(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return Qwen2Config(**QWEN2_SIZES[size], **_QWEN2_COMMON, **ids)


def parameter_count(config: Any) -> int:
    """Parameters of the model ``config`` describes, built on the meta device (no memory),
    counted as the Hub's safetensors metadata counts them (tied weights once)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return int(model.num_parameters())


def save_random_model(out: Path, config: Any, tokenizer: Any, *, device: str) -> int:
    """Save a seeded random bf16 model of ``config`` plus ``tokenizer`` to ``out``.

    Built on ``device`` because initialising 7.6B parameters is minutes on a CPU and
    seconds on a GPU; saved as bf16 safetensors, the dtype the recipes load. Returns the
    parameter count.
    """
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    count = int(model.num_parameters())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return count


def _pairs(n: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(n)]


def write_sft_dataset(out: Path, n: int = 32) -> Path:
    """``out/train.jsonl``: chat rows (``messages``: user question, assistant answer)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {"messages": [
            {"role": "user", "content": f"What is {a} + {b}?"},
            {"role": "assistant", "content": f"{a} + {b} = {a + b}. The answer is {a + b}."},
        ]}
        for a, b in _pairs(n, seed=1)
    ]  # fmt: skip
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def write_grpo_dataset(out: Path, n: int = 32) -> Path:
    """``out/train.jsonl``: ``problem`` and ``solution`` rows, the columns GRPO defaults to."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"problem": f"What is {a} + {b}?", "solution": f"\\boxed{{{a + b}}}"}
            for a, b in _pairs(n, seed=2)]  # fmt: skip
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out
