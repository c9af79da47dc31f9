"""``ls --sort score:NAME`` / ``--score NAME>=X`` and the final Discord message's scores."""

from __future__ import annotations

from typing import Any

import pytest

from thinnka.cli.scores import keep_passing, parse_score_filter, parse_sort, sort_by_score
from thinnka.errors import ConfigError
from thinnka.events.sinks import discord_text


def _row(run_id: str, **after: float) -> dict[str, Any]:
    scores = [
        {"name": k, "before": 0.0, "after": v, "split": "", "rows": 1} for k, v in after.items()
    ]
    return {"id": run_id, "scores": scores}


ROWS = [_row("a", eval_loss=2.0, reward=0.1), _row("b", eval_loss=1.0), _row("c", reward=0.9)]


def test_best_first_lower_for_losses_higher_for_rewards_missing_last() -> None:
    assert [r["id"] for r in sort_by_score(ROWS, "eval_loss")] == ["b", "a", "c"]
    assert [r["id"] for r in sort_by_score(ROWS, "reward")] == ["c", "a", "b"]


def test_filters_keep_runs_whose_score_passes_every_test() -> None:
    assert [r["id"] for r in keep_passing(ROWS, [parse_score_filter("reward>=0.5")])] == ["c"]
    both = [parse_score_filter("eval_loss < 3"), parse_score_filter("reward>0")]
    assert [r["id"] for r in keep_passing(ROWS, both)] == ["a"]


@pytest.mark.parametrize("value", ["reward", "reward>>1", "reward>=x", ">=1"])
def test_a_filter_that_is_not_name_op_value_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="--score takes NAME>=VALUE"):
        parse_score_filter(value)


def test_sort_takes_score_colon_name() -> None:
    assert parse_sort("score:accuracy_reward") == "accuracy_reward"
    with pytest.raises(ConfigError, match="score:NAME"):
        parse_sort("cost")


def test_the_final_discord_message_says_before_and_after() -> None:
    payload = {
        "event": "done", "message": "Run r-1 succeeded.", "run_id": "r-1", "repo_id": "m",
        "cost_usd": 0.01, "scores": [{"name": "accuracy_reward", "before": 0.31, "after": 0.58,
                                      "split": "200 held-out rows", "rows": 200}],
    }  # fmt: skip
    assert "eval: accuracy_reward 0.31 → 0.58 (200 held-out rows)" in discord_text(payload)
