"""Chat template and system prompt decisions.

* Template: ``--chat-template`` (a file when one exists at that path, else the literal string)
  > none when the model ships one > thinnka's ChatML default. GRPO crashes without a template
  (unlike SFT it has no ChatML fallback), and the original's "User:/Assistant:" default taught
  models a format no serving stack expects, so the default is ChatML.
* System prompt: the original tool's text, built from the reasoning/answer tags.
* Folding: a template that raises "System role not supported" (Gemma 1/2) cannot render a
  system message, so the system text moves into the first user turn instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from thinnka.errors import ConfigError

if TYPE_CHECKING:
    from thinnka.options import RunOptions
    from thinnka.planning.facts import ModelContext

__all__ = ["CHATML_DEFAULT", "ChatDecision", "decide_chat", "system_prompt"]

# ChatML, with one change: an assistant turn ends with `<|im_end|>` *and* the tokenizer's own
# eos token. Models without a template rarely have `<|im_start|>`/`<|im_end|>` as special
# tokens; this way SFT still teaches them to stop on the eos they already know, and nothing
# resizes the embeddings (which would bloat QLoRA adapters and complicate the merge).
CHATML_DEFAULT = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_SYSTEM_REJECTED = "System role not supported"
_TEMPLATE_SUFFIXES = (".jinja", ".j2", ".jinja2", ".txt")


@dataclass(frozen=True)
class ChatDecision:
    """Which template to set (None: keep the model's) and whether to fold the system prompt."""

    template: str | None
    fold_system: bool
    notes: tuple[str, ...]


def system_prompt(options: RunOptions) -> str:
    """The original tool's GRPO system prompt, word for word."""
    text = "You are a helpful AI Assistant that provides well-reasoned and detailed responses. "
    if options.reasoning_tag and options.reasoning_end_tag:
        text += f"First reason inside {options.reasoning_tag} and {options.reasoning_end_tag}."
    else:
        text += "First think step by step."
    if options.answer_tag and options.answer_end_tag:
        text += (
            f" Then provide the final answer inside {options.answer_tag}"
            f" and {options.answer_end_tag}."
        )
    else:
        text += " Then provide the final answer directly after thinking."
    return text


def _explicit_template(value: str) -> str:
    path = Path(value).expanduser()
    try:
        is_file = path.is_file()
    except OSError:  # a long template string is not a path the OS accepts
        is_file = False
    if is_file:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--chat-template {value}: cannot read the file ({exc}).") from None
        if not text.strip():
            raise ConfigError(f"--chat-template {value}: the file is empty.")
        return text
    if "\n" not in value and value.endswith(_TEMPLATE_SUFFIXES):
        # Looks like a file name, not a Jinja template: a typo would otherwise become the
        # literal template text and every prompt would render as that file name.
        raise ConfigError(f"--chat-template {value}: no such file.")
    if "{" not in value:
        raise ConfigError(
            "--chat-template is neither an existing file nor a Jinja template "
            "(no '{{' or '{%' in it)."
        )
    return value


def decide_chat(options: RunOptions, model: ModelContext) -> ChatDecision:
    notes: list[str] = []
    if options.chat_template:
        explicit = _explicit_template(options.chat_template)
        template: str | None = explicit
        notes.append("Using the chat template given with --chat-template.")
        fold = _SYSTEM_REJECTED in explicit
    elif model.has_chat_template:
        template = None
        fold = not model.system_role_supported
    else:
        template = CHATML_DEFAULT
        fold = False
        notes.append(
            "The model has no chat template; injecting thinnka's ChatML default "
            "(assistant turns end with <|im_end|> and the tokenizer's eos token)."
        )
    if fold:
        what = (
            "system messages of the data set are merged into the first user turn"
            if options.sft
            else "the system prompt is folded into the first user turn"
        )
        notes.append(f"The chat template rejects a system message (Gemma 1/2 style); {what}.")
    return ChatDecision(template, fold, tuple(notes))
