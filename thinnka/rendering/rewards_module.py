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

__all__ = ["BUILTIN_TAGS", "REGISTRIES", "RewardPlan", "check_rewards", "plan_rewards"]

BUILTIN_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
MODULE = "thinnka_rewards"
# The names each trainer's registry resolves (open_r1/rewards.py at 1416fa0; trl/scripts/grpo.py
# in TRL 1.13). Anything else must be a dotted import path.
REGISTRIES = {
    "openr1": (
        "accuracy",
        "format",
        "reasoning_steps",
        "cosine",
        "repetition_penalty",
        "length",
        "tag_count",
        "code",
        "binary_code",
        "ioi_code",
        "cf_code",
        "code_format",
        "soft_overlong_punishment",
    ),
    "trl": (
        "accuracy_reward",
        "reasoning_accuracy_reward",
        "think_format_reward",
        "get_soft_overlong_punishment",
    ),
}


@dataclass(frozen=True)
class RewardPlan:
    names: tuple[str, ...]
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
    return RewardPlan(tuple(names), config, note)


def check_rewards(recipe: dict[str, Any], trainer: str, *, weights_set: bool) -> list[str]:
    """Refuse reward names the trainer cannot resolve; keep reward_weights the same length."""
    import difflib

    from thinnka.errors import ConfigError

    names = list(recipe.get("reward_funcs") or [])
    registry = REGISTRIES[trainer]
    for name in names:
        if "." not in name and name not in registry:
            close = difflib.get_close_matches(name, registry, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"reward_funcs: {name!r} is not a {trainer} reward ({', '.join(registry)}) nor a "
                f"dotted import path.{hint}"
            )
    weights = recipe.get("reward_weights")
    if weights is None or len(weights) == len(names):
        return []
    if weights_set:
        raise ConfigError(
            f"reward_weights has {len(weights)} entries for {len(names)} reward_funcs; "
            "give one weight per reward."
        )
    recipe["reward_weights"] = [1.0] * len(names)
    return [f"reward_weights reset to 1.0 for each of the {len(names)} reward_funcs."]
