"""The trainer's logged metrics, parsed from its output.

Both trainers (TRL directly and Open R1 through TRL) log through
``transformers``' ``Trainer.log``, which prints one Python dict per logging
step, e.g. ``{'loss': 1.23, 'grad_norm': 0.5, 'learning_rate': 2e-05,
'epoch': 0.5}``; GRPO adds ``reward``, ``rewards/<func>/mean``, ``kl``,
``completions/mean_length`` and more. Newer versions print the numbers as
strings; both are read. The run's summary (``train_runtime`` ...) is not a
step and is left out.

The held-out split's scores come as thinnka's own lines, ``thinnka: eval at step N:
{json}`` (printed by the pod's ``thinnka_eval.py`` before, during and after training),
stored under ``eval/<score>`` at step N. The trainer's printed eval dict
(``{'eval_loss': ..., 'epoch': ...}``) carries no step and is not read: counted as a
logged step, it would shift every later step.

Metrics are read from the local copy of the remote output (``remote.log``),
from the byte after the last line already stored, so following a run and
resuming it store each logged step exactly once.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thinnka.store.metric_table import MetricsTable

__all__ = [
    "EVAL_PREFIX",
    "MAIN_METRICS",
    "LoggingSteps",
    "MetricLine",
    "ingest_metrics",
    "is_step_bar",
    "logged_step",
    "parse_eval_scores",
    "parse_metrics",
    "read_metric_lines",
]

# What a person looks at first, in this order (the rest is in the report).
MAIN_METRICS = (
    "loss", "reward", "learning_rate", "grad_norm", "kl", "completions/mean_length", "epoch",
)  # fmt: skip
_KNOWN = frozenset({"loss", "reward", "learning_rate", "grad_norm", "kl", "epoch"})
_SUMMARY = "train_runtime"
_LINE = re.compile(r"^\[(?P<stage>[\w-]+)\] \s*(?P<text>\{.*\})\s*$")
_EVAL_LINE = re.compile(r"^thinnka: eval at step (?P<step>\d+): (?P<json>\{.*\})\s*$")
_STAGED = re.compile(r"^\[(?P<stage>[\w-]+)\] (?P<text>.*)$", re.DOTALL)
EVAL_PREFIX = "eval/"  # the held-out scores' series: eval/eval_loss, eval/accuracy, ...


def is_step_bar(text: str) -> bool:
    """True for the trainer's own progress bar (`` 35%|███▌ | 7/20 [...]``); false for
    the described bars of loading weights or mapping datasets (``Map: 100%|...``)."""
    head, bar, _ = text.partition("|")
    return bool(bar) and head.strip().endswith("%") and ":" not in head


def parse_metrics(text: str) -> dict[str, float] | None:
    """The numbers of one logged dict line, or None when the line is not one."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")) or "'" not in text:
        return None
    try:
        data = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(data, Mapping) or _SUMMARY in data:
        return None
    if any(isinstance(key, str) and key.startswith("eval_") for key in data):
        return None  # an evaluation's dict, not a training step (its scores come apart)
    numbers: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(key, str):
            continue
        try:
            numbers[key] = float(value)
        except (TypeError, ValueError):
            continue
    if not (_KNOWN & numbers.keys() or any(k.startswith("rewards/") for k in numbers)):
        return None
    return numbers


@dataclass(frozen=True)
class LoggingSteps:
    """The trainer's ``logging_steps``, which transformers reads two ways
    (``TrainerState.compute_steps``): 1 and above, every that many steps; below 1, a
    fraction of the run's total steps, rounded up (0.1 of 45 steps: every 5 steps).

    A run of ``max_steps`` knows its total up front (``total_steps``); a run of epochs
    learns it from the trainer's step bar (``every(bar_total)``).
    """

    value: float = 1.0
    total_steps: int | None = None

    def every(self, bar_total: int | None = None) -> int | None:
        """Steps between two logged dicts; None while a fraction's total is unknown."""
        if self.value >= 1:
            return int(self.value)
        total = self.total_steps or bar_total
        if not total or total <= 0:
            return None
        return max(1, math.ceil(total * self.value))


def logged_step(n: int, every: int, *, first_step_logged: bool = True) -> int:
    """The training step of the ``n``-th logged dict (1-based) of a run.

    transformers logs every ``logging_steps`` steps and, with ``logging_first_step`` (set by
    all four of thinnka's recipes), step 1 as well: with ``logging_steps: 10`` the dicts are
    steps 1, 10, 20, ... (real output: tests/data/README.md).
    """
    if first_step_logged and every > 1:
        return 1 if n == 1 else (n - 1) * every
    return n * every


def parse_eval_scores(text: str) -> tuple[int, dict[str, float]] | None:
    """(step, scores as ``eval/<name>``) of a ``thinnka: eval at step N: {json}`` line,
    or None when the line is not one."""
    match = _EVAL_LINE.match(text.strip())
    if match is None:
        return None
    try:
        data = json.loads(match.group("json"))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return int(match.group("step")), {
        f"{EVAL_PREFIX}{key}": float(value)
        for key, value in data.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
        and math.isfinite(value)
    }  # fmt: skip


@dataclass(frozen=True)
class MetricLine:
    stage: str
    values: dict[str, float]
    end: int  # byte offset just after the line in the local copy
    step: int | None = None  # known for an eval line; a logged dict's is counted


def read_metric_lines(path: Path, start: int) -> list[MetricLine]:
    """The metric lines of the local copy from byte ``start`` on (complete lines only)."""
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read()
    found = []
    position = start
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # a line still being written: read it next time
        position += len(raw)
        text = raw.decode("utf-8", errors="replace")
        match = _LINE.match(text)
        if match is not None:
            values = parse_metrics(match.group("text"))
            if values:
                found.append(MetricLine(match.group("stage"), values, position))
            continue
        staged = _STAGED.match(text)
        scored = parse_eval_scores(staged.group("text")) if staged is not None else None
        if staged is not None and scored is not None and scored[1]:
            step, scores = scored
            found.append(MetricLine(staged.group("stage"), scores, position, step=step))
    return found


def ingest_metrics(
    table: MetricsTable, run_id: str, path: Path, *, every: int = 1, first_step_logged: bool = True
) -> int:
    """Store the metric lines of the local log copy not stored yet; count added.

    ``every`` and ``first_step_logged`` are the trainer's ``logging_steps`` and
    ``logging_first_step``: which step the n-th logged dict is (``logged_step``).
    """
    start, stored = table.position(run_id, counted_apart=EVAL_PREFIX)
    lines = read_metric_lines(path, start)
    steps = []
    for line in lines:
        if line.step is None:
            stored += 1
            steps.append(logged_step(stored, every, first_step_logged=first_step_logged))
        else:
            steps.append(line.step)
    return table.add(run_id, lines, steps=steps)
