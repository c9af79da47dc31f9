"""Tiny, locally built models and data sets for the emulated Hub (nothing is ever downloaded).

Why build instead of download: the suite must run with no network, and a random 2-layer
Qwen2 with a ~400-token byte-level BPE vocabulary (a few hundred KB of safetensors) exercises
the same code paths as a real checkpoint: `AutoModelForCausalLM`, ChatML chat templates, TRL
SFT/GRPO on CPU (docs/trainers.md, "CPU smoke runs").

Building needs torch/transformers (~5 s); the result is cached under
`$THINNKA_TEST_CACHE` (default `~/.cache/thinnka-tests`) in a folder named after a hash of
this file and the library versions, so later sessions only read files. Only the stdlib is
imported at module level: a cached start must stay well under half a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "CHATML_TEMPLATE",
    "TinyArtifacts",
    "build_artifacts",
    "build_tiny_model",
    "cache_key",
    "cache_root",
    "grpo_rows",
    "read_tree",
    "sft_rows",
    "tiny_artifacts",
    "write_grpo_dataset",
    "write_sft_dataset",
]

# A three-line ChatML template (what Qwen-style chat models ship).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_VERSIONED = ("torch", "transformers", "tokenizers", "safetensors", "pyarrow")
_SFT_README = """---
license: mit
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# tiny-sft

Arithmetic chat pairs for smoke tests (`messages`, user/assistant).
"""
_GRPO_README = """---
license: mit
---
# tiny-grpo

Arithmetic problems with `problem` and `solution` columns for GRPO smoke tests.
"""


@dataclass(frozen=True)
class TinyArtifacts:
    """Paths of one built (or cached) set of tiny artefacts, plus facts tests compare against."""

    root: Path
    chat: Path  # ChatML template inside tokenizer_config.json
    chat_jinja: Path  # same weights, template in chat_template.jinja (transformers 5 layout)
    no_template: Path  # same weights, no chat template, eos <|endoftext|>
    sft: Path  # data/train-00000-of-00001.parquet with `messages`
    grpo: Path  # train.jsonl with `problem`, `solution`
    num_parameters: int


# Resolved at import: tests that point HOME at a temp folder (the `workdir` fixture) must not
# make a later FakeHub rebuild the artefacts into that throwaway home.
_HOME_CACHE = Path.home() / ".cache" / "thinnka-tests"


def cache_root() -> Path:
    """Where artefacts live between sessions: `$THINNKA_TEST_CACHE` or `~/.cache/thinnka-tests`."""
    env = os.environ.get("THINNKA_TEST_CACHE")
    return Path(env) if env else _HOME_CACHE


def cache_key() -> str:
    """Hash of this builder's source and the versions that shape its output."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for name in _VERSIONED:
        try:
            digest.update(f"{name}=={metadata.version(name)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} missing\n".encode())
    return digest.hexdigest()[:16]


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` as repo path → bytes (what the fake Hub seeds repos with)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def tiny_artifacts(root: Path | None = None, *, rebuild: bool = False) -> TinyArtifacts:
    """Cached artefacts, building them once per builder/library version.

    Builds into a private temp folder then renames it into place, so concurrent sessions
    (pytest-xdist, a bench run next to the suite) never see a half-written cache.
    """
    base = root or cache_root()
    final = base / cache_key()
    if rebuild and final.exists():
        shutil.rmtree(final)
    if not (final / "manifest.json").exists():
        tmp = base / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            build_artifacts(tmp)
            try:
                tmp.rename(final)
            except OSError:  # another process won the race; its copy is equivalent
                if not (final / "manifest.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    manifest = json.loads((final / "manifest.json").read_text())
    return TinyArtifacts(
        root=final,
        chat=final / "chat",
        chat_jinja=final / "chat_jinja",
        no_template=final / "no_template",
        sft=final / "sft",
        grpo=final / "grpo",
        num_parameters=int(manifest["num_parameters"]),
    )


def build_artifacts(out: Path) -> None:
    """Build every model and data set under `out` and write `manifest.json` last."""
    out.mkdir(parents=True, exist_ok=True)
    n = build_tiny_model(out / "chat", chat_template=CHATML_TEMPLATE, template_file=False)
    build_tiny_model(out / "chat_jinja", chat_template=CHATML_TEMPLATE, template_file=True)
    build_tiny_model(out / "no_template", chat_template=None)
    write_sft_dataset(out / "sft")
    write_grpo_dataset(out / "grpo")
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    manifest = {"num_parameters": n, "versions": versions, "key": cache_key()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _corpus() -> list[str]:
    words = (
        "the model answers questions about numbers and words in a short friendly way "
        "what is plus minus times equals answer think step by step user assistant system"
    )
    lines = [words]
    lines += [
        f"What is {a} + {b}? {a} + {b} = {a + b}. \\boxed{{{a + b}}}"
        for a in range(10)
        for b in range(10)
    ]
    return lines


def _tokenizer(chat_template: str | None) -> Any:
    """Byte-level BPE (~400 tokens) with ChatML specials, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    eos = "<|im_end|>" if chat_template else "<|endoftext|>"
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=eos, pad_token="<|endoftext|>", model_max_length=512
    )
    if chat_template:
        wrapped.chat_template = chat_template
    return wrapped


def build_tiny_model(out: Path, *, chat_template: str | None, template_file: bool = False) -> int:
    """Save a seeded random Qwen2 causal LM plus tokenizer to `out`; returns its parameter count.

    `template_file=False` moves the template into tokenizer_config.json (the layout of most
    Hub checkpoints, and what a tokenizer_config.json-only check sees); `True` keeps
    transformers 5's separate `chat_template.jinja`.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = _tokenizer(chat_template)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )  # fmt: skip
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    jinja = out / "chat_template.jinja"
    if chat_template and not template_file and jinja.exists():
        cfg_path = out / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["chat_template"] = jinja.read_text()
        cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
        jinja.unlink()
    return int(model.num_parameters())


def _pairs(n: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(n)]


def sft_rows(n: int = 32) -> list[dict[str, Any]]:
    """Chat rows: `messages` = user question, assistant answer."""
    return [
        {"messages": [
            {"role": "user", "content": f"What is {a} + {b}?"},
            {"role": "assistant", "content": f"{a} + {b} = {a + b}. The answer is {a + b}."},
        ]}
        for a, b in _pairs(n, seed=1)
    ]  # fmt: skip


def grpo_rows(n: int = 32) -> list[dict[str, str]]:
    """Problem rows for GRPO: solutions alternate `\\boxed{4}`, `$4$` and plain `4`."""
    forms = ("\\boxed{{{}}}", "${}$", "{}")
    return [
        {"problem": f"What is {a} + {b}?", "solution": forms[i % 3].format(a + b)}
        for i, (a, b) in enumerate(_pairs(n, seed=2))
    ]


def write_sft_dataset(out: Path, n: int = 32) -> Path:
    """Parquet shard in the `push_to_hub` layout (data/train-00000-of-00001.parquet + card)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (out / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(sft_rows(n)), out / "data" / "train-00000-of-00001.parquet")
    (out / "README.md").write_text(_SFT_README)
    return out


def write_grpo_dataset(out: Path, n: int = 32) -> Path:
    """A root `train.jsonl` (split inferred from the file name) + a minimal card."""
    out.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(row) + "\n" for row in grpo_rows(n))
    (out / "train.jsonl").write_text(lines)
    (out / "README.md").write_text(_GRPO_README)
    return out
