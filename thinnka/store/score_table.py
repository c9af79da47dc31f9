"""The per-run scores table: each metric of the eval split, before and after training."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from thinnka.store.models import ScoreRow

__all__ = ["Score", "ScoresTable", "scores_from_file"]


@dataclass(frozen=True)
class Score:
    name: str  # eval_loss, perplexity, accuracy_reward, ...
    before: float | None  # the base model
    after: float | None  # the trained model
    split: str  # "10 held-out rows", "200 rows of org/eval-set"
    rows: int | None

    @property
    def change(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    def describe(self) -> str:
        """``accuracy_reward 0.31 → 0.58``."""
        return f"{self.name} {_number(self.before)} → {_number(self.after)}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "before": self.before, "after": self.after,
                "split": self.split, "rows": self.rows}  # fmt: skip


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def scores_from_file(data: Mapping[str, Any]) -> list[Score]:
    """The pod's ``scores.json`` (thinnka_eval.py) as scores; unknown shapes give none."""
    before = data.get("before") if isinstance(data.get("before"), dict) else {}
    after = data.get("after") if isinstance(data.get("after"), dict) else {}
    assert isinstance(before, dict) and isinstance(after, dict)
    rows = data.get("rows")
    split = str(data.get("split") or "")[:500]
    found = []
    for name in dict.fromkeys([*before, *after]):
        values = [v.get(name) for v in (before, after)]
        if all(v is None or isinstance(v, int | float) for v in values):
            before_value, after_value = (None if v is None else float(v) for v in values)
            count = int(rows) if isinstance(rows, int) else None
            found.append(Score(str(name)[:96], before_value, after_value, split, count))
    return found


class ScoresTable:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def write(self, session: Session, run_id: str, scores: Iterable[Score]) -> None:
        """Replace the run's scores (inside the caller's transaction)."""
        session.execute(delete(ScoreRow).where(ScoreRow.run_id == run_id))
        rows = [{"run_id": run_id, **s.to_json()} for s in scores]
        if rows:
            session.execute(insert(ScoreRow), rows)

    def of(self, run_id: str) -> list[Score]:
        query = select(ScoreRow).where(ScoreRow.run_id == run_id).order_by(ScoreRow.id)
        with self._sessions() as session:
            return [_score(row) for row in session.scalars(query)]

    def of_runs(self, run_ids: Iterable[str]) -> dict[str, list[Score]]:
        """Scores of many runs at once (``ls``)."""
        ids = list(run_ids)
        found: dict[str, list[Score]] = {run_id: [] for run_id in ids}
        if not ids:
            return found
        with self._sessions() as session:
            for start in range(0, len(ids), 500):  # keep the IN list within any backend's limit
                query = select(ScoreRow).where(ScoreRow.run_id.in_(ids[start : start + 500]))
                for row in session.scalars(query.order_by(ScoreRow.id)):
                    found[row.run_id].append(_score(row))
        return found


def _score(row: ScoreRow) -> Score:
    return Score(row.name, row.before, row.after, row.split, row.rows)
