"""Which reward functions a GRPO run uses, and the config of thinnka's own rewards.

Open R1's ``format``/``tag_count`` rewards hard-code ``<think>``/``<answer>``, and TRL
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
    from thinnka.planning.stacks import TrainerStack

__all__ = ["BUILTIN_TAGS", "MODULE", "RewardPlan", "check_rewards", "plan_rewards"]

BUILTIN_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
MODULE = "thinnka_rewards"


@dataclass(frozen=True)
class RewardPlan:
    names: tuple[str, ...]
    config: dict[str, Any]  # thinnka_rewards.json
    note: str


def plan_rewards(options: RunOptions, stack: TrainerStack) -> RewardPlan:
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
    if stack.builtin_tag_rewards and tags == BUILTIN_TAGS:
        names = stack.builtin_tag_rewards
        return RewardPlan(names, config, f"Rewards: {stack.display}'s {_and(names)}.")
    # Open R1's accuracy runs math-verify on the whole completion (tag-agnostic). thinnka's
    # reads the answer between the answer tags (or after the reasoning end tag) and falls back
    # to exact matching when math-verify is missing.
    picked = [stack.accuracy_reward]
    if has_tags:
        picked += [f"{MODULE}.format_reward", f"{MODULE}.tag_count_reward"]
    shown = " ".join(t for t in tags if t) or "no tags"
    note = f"Rewards: {', '.join(picked)} (thinnka's own functions score the tags {shown})."
    return RewardPlan(tuple(picked), config, note)


def _and(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def check_rewards(recipe: dict[str, Any], stack: TrainerStack, *, weights_set: bool) -> list[str]:
    """Refuse reward names the trainer cannot resolve; keep reward_weights the same length."""
    import difflib

    from thinnka.errors import ConfigError

    names = list(recipe.get("reward_funcs") or [])
    registry = stack.rewards
    for name in names:
        if "." not in name and name not in registry:
            close = difflib.get_close_matches(name, registry, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"reward_funcs: {name!r} is not a {stack.name} reward ({', '.join(registry)}) "
                f"nor a dotted import path.{hint}"
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
