"""What a data set must hold for a run, and how much of it is held out: pure rules.

The same rules the trainers apply once the data is on the pod, checked here row by row
before anything is rented (``thinnka.data`` reads the files and calls these):

* SFT (TRL's ``SFTTrainer``, Open R1's sft.py) takes a conversation in ``messages`` (a list
  of ``{"role", "content"}`` turns, at least one from the assistant), or ``prompt`` and
  ``completion``, or plain ``text``.
* GRPO needs the prompt column (``--dataset-prompt-column``, default ``problem``): a string,
  or a list of turns. Accuracy rewards (thinnka's, TRL's and Open R1's ``accuracy``)
  compare with the ``solution`` column, so a run that uses one needs it too.

The held-out split: ``--eval-fraction`` of the rows, at least one, at most
``EVAL_MAX_ROWS`` (scoring is generation for GRPO: a few hundred prompts already give a
mean to two digits, and more only adds pod time), always leaving training rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from thinnka.errors import ConfigError

if TYPE_CHECKING:
    from thinnka.options import RunOptions

__all__ = [
    "EVAL_MAX_ROWS",
    "MAX_DATA_BYTES",
    "WARN_DATA_BYTES",
    "ColumnRule",
    "Shape",
    "check_columns",
    "check_row",
    "column_rule",
    "eval_rows",
    "eval_settings",
    "evaluation_on",
    "hub_dataset",
    "measured_text",
    "remote_data_dir",
    "rule_for",
]

EVAL_MAX_ROWS = 200
# A local data set travels over SFTP with each run (and again to a new pod): past a few
# hundred MB a private Hub data set, downloaded by the pod next to the model, is the better
# road; past 2 GiB thinnka refuses (the check reads every row on this machine, too).
WARN_DATA_BYTES = 200 * 1024**2
MAX_DATA_BYTES = 2 * 1024**3

Shape = Literal["messages", "prompt_completion", "text", "prompt"]
_ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass(frozen=True)
class ColumnRule:
    """The columns a run reads: for SFT one of three shapes, for GRPO named columns."""

    mode: Literal["sft", "grpo"]
    prompt_column: str | None = None  # GRPO
    reward_columns: tuple[str, ...] = ()  # GRPO: what its reward functions read

    def describe(self) -> str:
        if self.mode == "sft":
            return "SFT needs `messages`, or `prompt` and `completion`, or `text`"
        needed = ", ".join(f"`{c}`" for c in (self.prompt_column or "", *self.reward_columns))
        return f"GRPO needs {needed}"


def column_rule(
    mode: Literal["sft", "grpo"], prompt_column: str, rewards: Sequence[str]
) -> ColumnRule:
    """The rule of a run: its mode, prompt column and reward functions (by name)."""
    if mode == "sft":
        return ColumnRule("sft")
    readers = ("solution",) if any("accuracy" in name for name in rewards) else ()
    return ColumnRule("grpo", prompt_column, readers)


def rule_for(options: RunOptions) -> ColumnRule:
    """The rule of a run's options: the rewards it plans (or names with --set)."""
    if options.sft:
        return ColumnRule("sft")
    from thinnka.planning.overrides import typed_overrides
    from thinnka.planning.rewards import plan_rewards
    from thinnka.planning.stacks import stack_for

    rewards = typed_overrides(options).values.get("reward_funcs")
    if rewards is None:
        rewards = plan_rewards(options, stack_for(options.trainer)).names
    names = rewards if isinstance(rewards, list | tuple) else [rewards]
    return column_rule("grpo", options.dataset_prompt_column, [str(n) for n in names])


def check_columns(columns: Sequence[str], rule: ColumnRule, where: str) -> Shape:
    """The shape the columns give the rule; ``ConfigError`` naming what is missing."""
    have = set(columns)
    if rule.mode == "sft":
        for shape, needed in (
            ("messages", {"messages"}),
            ("prompt_completion", {"prompt", "completion"}),
            ("text", {"text"}),
        ):
            if needed <= have:
                return shape  # type: ignore[return-value]
        raise ConfigError(
            f"{where}: no column SFT can train on ({_listed(columns)}); {rule.describe()}."
        )
    missing = [c for c in (rule.prompt_column or "", *rule.reward_columns) if c not in have]
    if missing:
        hint = " (--dataset-prompt-column names another)" if rule.prompt_column in missing else ""
        raise ConfigError(
            f"{where}: column {_listed(missing)} missing{hint}; the file has "
            f"{_listed(columns)}. {rule.describe()}."
        )
    return "prompt"


def check_row(row: Mapping[str, Any], rule: ColumnRule, shape: Shape) -> str | None:
    """What is wrong with one row (``column 'x': ...``), or None."""
    if shape == "messages":
        return _turns("messages", row.get("messages"), need_assistant=True)
    if shape == "prompt_completion":
        return _text_or_turns("prompt", row.get("prompt")) or _text_or_turns(
            "completion", row.get("completion")
        )
    if shape == "text":
        return _text("text", row.get("text"))
    assert rule.prompt_column is not None
    problem = _text_or_turns(rule.prompt_column, row.get(rule.prompt_column))
    for column in rule.reward_columns:
        value = row.get(column)
        if problem is None and (value is None or str(value).strip() == ""):
            problem = f"column {column!r} is empty (the accuracy reward compares with it)"
    return problem


def measured_text(row: Mapping[str, Any], rule: ColumnRule, shape: Shape) -> str:
    """The text whose length the plan reports: what the model reads of a row."""
    if shape == "messages":
        return "\n".join(str(turn.get("content", "")) for turn in row["messages"])
    if shape == "prompt_completion":
        return _flat(row["prompt"]) + _flat(row["completion"])
    if shape == "text":
        return str(row["text"])
    assert rule.prompt_column is not None
    return _flat(row[rule.prompt_column])


def remote_data_dir(run_dir: str, role: str) -> str:
    """Where a local data set lies on the pod: a folder the trainer's ``load_dataset``
    reads by file type (``datasets`` takes a folder, not a single file, as a path)."""
    return f"{run_dir}/data/{role}"


def evaluation_on(options: RunOptions) -> bool:
    return bool(options.eval_dataset_name or options.eval_dataset_path or options.eval_fraction > 0)


def eval_settings(options: RunOptions, run_dir: str) -> dict[str, Any] | None:
    """What thinnka's launcher holds out and scores (``thinnka_train.json``'s ``eval``);
    None when evaluation is off."""
    if options.eval_dataset_path:
        dataset: str | None = remote_data_dir(run_dir, "eval")
        label = "the eval data set (local)"
    elif options.eval_dataset_name:
        dataset, label = options.eval_dataset_name, options.eval_dataset_name
    elif options.eval_fraction > 0:
        dataset, label = None, "held-out rows"
    else:
        return None
    return {
        "dataset": dataset,
        "label": label,
        "fraction": options.eval_fraction,
        "max_rows": EVAL_MAX_ROWS,
        "seed": options.dataset_seed,
        "points": options.eval_points,
    }


def hub_dataset(options: RunOptions, run_dir: str) -> str:
    """What the trainer's ``dataset_name`` reads: the Hub data set, or the uploaded folder."""
    return remote_data_dir(run_dir, "train") if options.dataset_path else options.dataset_name


def eval_rows(total: int, fraction: float) -> int:
    """Rows held out of ``total`` for ``fraction`` (0: none); at least one row trains."""
    if fraction <= 0 or total < 2:
        return 0
    return min(EVAL_MAX_ROWS, max(1, round(total * fraction)), total - 1)


# ------------------------------------------------------------------ helpers
def _listed(columns: Sequence[str]) -> str:
    return ", ".join(repr(c) for c in columns) if columns else "no columns"


def _flat(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(
            str(t.get("content", "")) if isinstance(t, dict) else str(t) for t in value
        )
    return str(value)


def _text(column: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"column {column!r} must be text, got {_kind(value)}"
    if not value.strip():
        return f"column {column!r} is empty"
    return None


def _text_or_turns(column: str, value: Any) -> str | None:
    if isinstance(value, list):
        return _turns(column, value, need_assistant=False)
    return _text(column, value)


def _turns(column: str, value: Any, *, need_assistant: bool) -> str | None:
    if not isinstance(value, list):
        hint = (
            " (CSV cannot hold one: use JSONL, JSON or Parquet)" if isinstance(value, str) else ""
        )
        return (
            f"column {column!r} must be a list of {{role, content}} turns, got {_kind(value)}{hint}"
        )
    if not value:
        return f"column {column!r} holds no turns"
    for number, turn in enumerate(value, 1):
        if not isinstance(turn, dict):
            return (
                f"column {column!r}: turn {number} is {_kind(turn)}, not a {{role, content}} object"
            )
        role, content = turn.get("role"), turn.get("content")
        if role not in _ROLES:
            return f"column {column!r}: turn {number} has role {role!r} (one of {sorted(_ROLES)})"
        if not isinstance(content, str):
            return f"column {column!r}: turn {number} has no text content"
    if need_assistant and not any(t.get("role") == "assistant" for t in value):
        return f"column {column!r} has no assistant turn: nothing to learn from"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (missing or null)"
    return {str: "text", list: "a list", dict: "an object", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )
