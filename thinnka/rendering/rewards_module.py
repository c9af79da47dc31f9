"""Which reward functions a GRPO run uses, and the config of thinnka's own rewards.

Open R1's ``format``/``tag_count`` hard-code ``<think>``/``<answer>`` (open-r1.md §4) and TRL
1.13 only has a ``<think>`` checker, so any other tag choice is scored by thinnka's own
``recipes/scripts/thinnka_rewards.py`` (written to run_dir, configured by
``thinnka_rewards.json`` next to it, named by dotted path ``thinnka_rewards.<func>``):

* trainer ``trl``: TRL's grpo script resolves dotted paths itself after putting the working
  directory (run_dir) on ``sys.path``; thinnka's launcher does the same.
* trainer ``openr1``: Open R1's registry only takes names, so ``thinnka_openr1.py`` wraps
  ``open_r1.grpo.get_reward_funcs``: dotted names are imported, the rest go to the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thinnka.options import RunOptions

__all__ = ["BUILTIN_TAGS", "RewardPlan", "plan_rewards"]

BUILTIN_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
MODULE = "thinnka_rewards"


@dataclass(frozen=True)
class RewardPlan:
    names: tuple[str, ...]
    uses_thinnka: bool  # thinnka_rewards.py must be shipped
    config: dict[str, Any]  # thinnka_rewards.json
    note: str


def plan_rewards(options: RunOptions, trainer: str) -> RewardPlan:
    tags = (
        options.reasoning_tag,
        options.reasoning_end_tag,
        options.answer_tag,
        options.answer_end_tag,
    )
    config = {
        "reasoning_tag": options.reasoning_tag,
        "reasoning_end_tag": options.reasoning_end_tag,
        "answer_tag": options.answer_tag,
        "answer_end_tag": options.answer_end_tag,
    }
    has_tags = bool(options.reasoning_tag or options.answer_tag)
    if trainer == "openr1" and tags == BUILTIN_TAGS:
        return RewardPlan(
            ("accuracy", "format", "tag_count"),
            False,
            config,
            "Rewards: Open R1's accuracy, format and tag_count.",
        )
    # Open R1's accuracy runs math-verify on the whole completion (tag-agnostic). thinnka's
    # reads the answer between the answer tags (or after the reasoning end tag) and falls back
    # to exact matching when math-verify is missing.
    accuracy = "accuracy" if trainer == "openr1" else f"{MODULE}.accuracy_reward"
    names = [accuracy]
    if has_tags:
        names += [f"{MODULE}.format_reward", f"{MODULE}.tag_count_reward"]
    shown = " ".join(t for t in tags if t) or "no tags"
    note = f"Rewards: {', '.join(names)} (thinnka's own functions score the tags {shown})."
    return RewardPlan(tuple(names), any(n.startswith(MODULE) for n in names), config, note)
