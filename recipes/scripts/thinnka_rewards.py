"""thinnka's GRPO reward functions for any reasoning/answer tags.

Shipped to the run folder next to ``thinnka_rewards.json`` (the tags of the run) and named
in the recipe as ``thinnka_rewards.<function>``. Signature as TRL and Open R1 call rewards:
``f(completions, **columns) -> list[float | None]``, a completion being either a string or
``[{"role": "assistant", "content": ...}]``.

* ``format_reward``: 1.0 when the completion is reasoning-tags then answer-tags (or, with only
  reasoning tags, reasoning then a non-empty answer), else 0.0. Whitespace between the parts is
  free; Open R1's built-in ``format`` demands exact newlines.
* ``tag_count_reward``: an equal share for each configured tag that appears exactly once.
* ``accuracy_reward``: compares the extracted answer with the ``solution`` column, with
  math-verify when installed (LaTeX-aware), else by normalised text. ``None`` skips a row
  whose gold answer cannot be parsed, as TRL's own accuracy reward does.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["accuracy_reward", "extract_answer", "format_reward", "tag_count_reward"]

_CONFIG = Path(__file__).with_name("thinnka_rewards.json")
_DEFAULT_TAGS = {
    "reasoning_tag": "<think>",
    "reasoning_end_tag": "</think>",
    "answer_tag": "",
    "answer_end_tag": "",
}


@lru_cache(maxsize=1)
def _tags() -> dict[str, str]:
    tags = dict(_DEFAULT_TAGS)
    if _CONFIG.exists():
        tags.update(json.loads(_CONFIG.read_text(encoding="utf-8")))
    return tags


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def _between(text: str, start: str, end: str) -> str | None:
    match = re.search(re.escape(start) + r"(.*?)" + re.escape(end), text, re.DOTALL)
    return match.group(1) if match else None


def extract_answer(text: str) -> str:
    """The answer part: inside the answer tags, else after the reasoning end tag, else all."""
    tags = _tags()
    if tags["answer_tag"] and tags["answer_end_tag"]:
        inside = _between(text, tags["answer_tag"], tags["answer_end_tag"])
        if inside is not None:
            return inside.strip()
    if tags["reasoning_end_tag"] and tags["reasoning_end_tag"] in text:
        return text.split(tags["reasoning_end_tag"], 1)[1].strip()
    return text.strip()


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    tags = _tags()
    r, r_end = re.escape(tags["reasoning_tag"]), re.escape(tags["reasoning_end_tag"])
    a, a_end = re.escape(tags["answer_tag"]), re.escape(tags["answer_end_tag"])
    if tags["reasoning_tag"] and tags["answer_tag"]:
        pattern = rf"^\s*{r}.*?{r_end}\s*{a}.*?\S.*?{a_end}\s*$"
    elif tags["reasoning_tag"]:
        pattern = rf"^\s*{r}.*?{r_end}\s*\S"
    elif tags["answer_tag"]:
        pattern = rf"^.*?{a}.*?\S.*?{a_end}\s*$"
    else:
        return [0.0 for _ in completions]
    compiled = re.compile(pattern, re.DOTALL)
    return [1.0 if compiled.match(_text(c)) else 0.0 for c in completions]


def tag_count_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    tags = [t for t in _tags().values() if t]
    if not tags:
        return [0.0 for _ in completions]
    share = 1.0 / len(tags)
    return [sum(share for t in tags if _text(c).count(t) == 1) for c in completions]


def _normalise(text: str) -> str:
    text = re.sub(r"\\boxed\{(.*)\}", r"\1", text.strip())
    text = text.strip().strip("$").strip().rstrip(".").strip()
    return re.sub(r"\s+", " ", text).lower()


def _verify(gold: str, answer: str) -> float | None:
    try:
        from math_verify import parse, verify
    except ImportError:
        return 1.0 if _normalise(gold) == _normalise(answer) and _normalise(gold) else 0.0
    gold_parsed = parse(gold)
    if not gold_parsed:
        return None
    # The answer part alone may be a bare number; give math-verify a LaTeX anchor for it.
    candidates = [answer, f"${answer}$"] if "$" not in answer and "\\" not in answer else [answer]
    for candidate in candidates:
        parsed = parse(candidate)
        if parsed and verify(gold_parsed, parsed):
            return 1.0
    return 0.0


def accuracy_reward(
    completions: list[Any], solution: list[str] | None = None, **kwargs: Any
) -> list[float | None]:
    if solution is None:
        raise ValueError("accuracy_reward needs a `solution` column in the data set.")
    return [
        _verify(str(gold), extract_answer(_text(c)))
        for c, gold in zip(completions, solution, strict=True)
    ]
