"""The pure rules of local data: columns per mode, the held-out split's size."""

from __future__ import annotations

import pytest

from thinnka.errors import ConfigError
from thinnka.options import RunOptions
from thinnka.planning.datarules import (
    EVAL_MAX_ROWS,
    check_columns,
    eval_rows,
    eval_settings,
    hub_dataset,
    rule_for,
)


@pytest.mark.parametrize(
    ("total", "fraction", "held"),
    [(100, 0.05, 5), (20, 0.01, 1), (100_000, 0.05, EVAL_MAX_ROWS), (2, 0.5, 1), (1, 0.5, 0),
     (100, 0.0, 0)],
)  # fmt: skip
def test_eval_rows_are_a_share_at_least_one_capped_and_leave_training_rows(
    total: int, fraction: float, held: int
) -> None:
    assert eval_rows(total, fraction) == held


def test_sft_takes_any_of_three_shapes() -> None:
    rule = rule_for(RunOptions(sft=True))
    assert check_columns(["messages", "id"], rule, "f") == "messages"
    assert check_columns(["prompt", "completion"], rule, "f") == "prompt_completion"
    assert check_columns(["text"], rule, "f") == "text"
    with pytest.raises(ConfigError, match="no column SFT can train on"):
        check_columns(["prompt"], rule, "f")


def test_grpo_needs_its_prompt_column_and_what_its_rewards_read() -> None:
    rule = rule_for(RunOptions(dataset_prompt_column="question"))
    assert (rule.prompt_column, rule.reward_columns) == ("question", ("solution",))
    # Rewards chosen with --set that read no column need none.
    formats = rule_for(
        RunOptions(trainer="trl", overrides=(("reward_funcs", "[think_format_reward]"),))
    )
    assert formats.reward_columns == ()


def test_a_local_data_set_is_read_from_its_folder_on_the_pod() -> None:
    local = RunOptions(sft=True, dataset_name="", dataset_path="/home/me/chats.jsonl")
    assert hub_dataset(local, "/workspace/thinnka/r-1") == "/workspace/thinnka/r-1/data/train"
    assert hub_dataset(RunOptions(), "/w") == "open-r1/OpenR1-Math-220k"
    evaluation = eval_settings(
        RunOptions(eval_dataset_path="/home/me/eval.csv"), "/workspace/thinnka/r-1"
    )
    assert evaluation is not None and evaluation["dataset"] == "/workspace/thinnka/r-1/data/eval"
    assert eval_settings(RunOptions(eval_fraction=0.0), "/w") is None
