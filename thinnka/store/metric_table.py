"""The per-run metrics table: one row per logged number, written once per log line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from thinnka.events.metrics import MetricLine, logged_step, read_metric_lines
from thinnka.store.models import MetricRow

__all__ = ["MetricsTable", "Series"]

Series = dict[str, list[tuple[int, float]]]


class MetricsTable:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def position(self, run_id: str) -> tuple[int, int]:
        """(byte after the last stored line, how many logged steps are stored)."""
        with self._sessions() as session:
            end, lines = session.execute(
                select(func.max(MetricRow.log_end), func.count(func.distinct(MetricRow.log_end)))
                .where(MetricRow.run_id == run_id)
            ).one()  # fmt: skip
        return int(end or 0), int(lines or 0)

    def add(self, run_id: str, lines: Sequence[MetricLine], *, steps: Sequence[int]) -> int:
        """Store ``lines`` as the training ``steps`` (one each); count added."""
        if not lines:
            return 0
        rows = []
        for line, counted in zip(lines, steps, strict=True):
            step = int(line.values.get("step", counted))
            rows += [
                {"run_id": run_id, "stage": line.stage, "step": step, "name": name,
                 "value": value, "log_end": line.end}
                for name, value in line.values.items()
            ]  # fmt: skip
        try:
            with self._sessions.begin() as session:
                session.execute(insert(MetricRow), rows)
        except IntegrityError:
            return 0  # another process stored these very lines first
        return len(lines)

    def ingest(
        self, run_id: str, path: Path, *, every: int = 1, first_step_logged: bool = True
    ) -> int:
        """Store the metric lines of the local log copy not stored yet; count added.

        ``every`` and ``first_step_logged`` are the trainer's ``logging_steps`` and
        ``logging_first_step``: which step the n-th logged dict is (``logged_step``).
        """
        start, stored = self.position(run_id)
        lines = read_metric_lines(path, start)
        steps = [
            logged_step(stored + n, every, first_step_logged=first_step_logged)
            for n in range(1, len(lines) + 1)
        ]
        return self.add(run_id, lines, steps=steps)

    def series(self, run_id: str) -> Series:
        """Every metric of the run as (step, value) pairs in step order."""
        query = (
            select(MetricRow.name, MetricRow.step, MetricRow.value)
            .where(MetricRow.run_id == run_id)
            .order_by(MetricRow.name, MetricRow.step, MetricRow.log_end)
        )
        found: Series = {}
        with self._sessions() as session:
            for name, step, value in session.execute(query):
                found.setdefault(name, []).append((int(step), float(value)))
        return found

    def latest(self, run_id: str) -> dict[str, float]:
        """The last logged value of every metric."""
        return {name: points[-1][1] for name, points in self.series(run_id).items()}
