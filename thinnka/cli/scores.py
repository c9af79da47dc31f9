"""Scores and local data in ``show``, and ``ls --sort score:NAME`` / ``--score NAME>=X``.

Which way is better: a loss or a perplexity is better lower, every other score (rewards,
accuracies) higher. ``--sort score:NAME`` lists the best "after" value first; runs without
that score come last. ``--score`` keeps the runs whose "after" value passes each test.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from thinnka.errors import ConfigError

__all__ = [
    "ScoreFilter", "keep_passing", "lower_is_better", "parse_score_filter", "parse_sort",
    "print_run_extras", "score_cell", "sort_by_score",
]  # fmt: skip

_console = Console(highlight=False, soft_wrap=True)
_FILTER = re.compile(r"\s*([A-Za-z0-9_./-]{1,96})\s*(>=|<=|>|<|=)\s*([-+0-9.eE]+)\s*")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq,
}  # fmt: skip

ScoreFilter = tuple[str, str, float]


def lower_is_better(name: str) -> bool:
    return name.endswith("loss") or name == "perplexity"


def after_value(row: dict[str, Any], name: str) -> float | None:
    for score in row.get("scores") or []:
        if score["name"] == name:
            value = score.get("after")
            return None if value is None else float(value)
    return None


def parse_sort(value: str | None) -> str | None:
    """``score:NAME`` → NAME (None: the default order, newest first)."""
    if value is None:
        return None
    kind, _, name = value.partition(":")
    if kind != "score" or not name.strip():
        raise ConfigError(f"--sort takes score:NAME (e.g. score:eval_loss), got {value!r}.")
    return name.strip()


def parse_score_filter(value: str) -> ScoreFilter:
    match = _FILTER.fullmatch(value)
    if match is None:
        raise ConfigError(
            f"--score takes NAME>=VALUE (or <=, >, <, =), e.g. accuracy_reward>=0.5; got {value!r}."
        )
    try:
        number = float(match[3])
    except ValueError:
        raise ConfigError(f"--score {value!r}: {match[3]!r} is not a number.") from None
    return match[1], match[2], number


def sort_by_score(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Best "after" value first; runs without the score keep their order, last."""
    have = [r for r in rows if after_value(r, name) is not None]
    missing = [r for r in rows if after_value(r, name) is None]
    have.sort(key=lambda r: after_value(r, name) or 0.0, reverse=not lower_is_better(name))
    return have + missing


def keep_passing(rows: list[dict[str, Any]], tests: list[ScoreFilter]) -> list[dict[str, Any]]:
    def passes(row: dict[str, Any]) -> bool:
        for name, op, bound in tests:
            value = after_value(row, name)
            if value is None or not _OPS[op](value, bound):
                return False
        return True

    return [row for row in rows if passes(row)]


def score_cell(row: dict[str, Any], name: str) -> str:
    for score in row.get("scores") or []:
        if score["name"] == name:
            return f"{_number(score['before'])} → {_number(score['after'])}"
    return "-"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def print_run_extras(data: dict[str, Any]) -> None:
    """``show``: the local data sets (path, sha256) and the eval scores."""
    for item in data.get("data") or []:
        _console.print(
            f"  {'data':9} {item['role']}: {item['path']} ({item['rows']:,} rows, "
            f"sha256 {item['sha256']})",
            markup=False,
        )
    scores = data.get("scores") or []
    if not scores:
        return
    table = Table("score", "before", "after", "change", title=f"eval on {scores[0]['split']}")
    for score in scores:
        before, after = score["before"], score["after"]
        change = None if before is None or after is None else after - before
        table.add_row(score["name"], _number(before), _number(after),
                      "-" if change is None else f"{change:+.4g}")  # fmt: skip
    _console.print(table)
