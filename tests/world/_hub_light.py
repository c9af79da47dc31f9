"""Metadata-only stand-ins for the tiny artefacts: the Hub emulator without torch.

Why: the Hub client is also tested in a small venv with huggingface_hub 2.x and no
torch/transformers (``.ci/run``), where `tests.world.tiny` cannot build real weights. A
client that reads model facts (``model_info``, ``config.json``, ``tokenizer_config.json``,
the safetensors header) needs only files of the right shape, which the stdlib writes:
a config, a tokenizer config with the ChatML template, and a safetensors file whose header
declares bf16 tensors (zero bytes behind it).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from tests.world.tiny import CHATML_TEMPLATE, TinyArtifacts

__all__ = ["LIGHT_PARAMETERS", "light_artifacts"]

_SHAPES = {"model.embed_tokens.weight": [512, 64], "model.layers.0.mlp.up_proj.weight": [128, 64]}
LIGHT_PARAMETERS = sum(rows * cols for rows, cols in _SHAPES.values())


def _safetensors() -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in _SHAPES.items():
        size = shape[0] * shape[1] * 2  # bf16
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def _model(folder: Path, *, template: str | None, template_file: bool) -> None:
    folder.mkdir(parents=True)
    config = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
              "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 512,
              "transformers_version": "5.0.0"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer: dict[str, object] = {"eos_token": "<|im_end|>"}
    if template is not None and not template_file:
        tokenizer["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    if template is not None and template_file:
        (folder / "chat_template.jinja").write_text(template)
    (folder / "model.safetensors").write_bytes(_safetensors())


def light_artifacts(root: Path) -> TinyArtifacts:
    """Write the stand-ins under ``root`` (an empty folder) and describe them."""
    _model(root / "chat", template=CHATML_TEMPLATE, template_file=False)
    _model(root / "chat_jinja", template=CHATML_TEMPLATE, template_file=True)
    _model(root / "no_template", template=None, template_file=False)
    for name in ("sft", "grpo"):
        (root / name).mkdir()
        (root / name / "train.jsonl").write_text('{"problem": "1+1", "solution": "2"}\n')
    return TinyArtifacts(
        root=root,
        chat=root / "chat",
        chat_jinja=root / "chat_jinja",
        no_template=root / "no_template",
        sft=root / "sft",
        grpo=root / "grpo",
        num_parameters=LIGHT_PARAMETERS,
    )
