"""The per-run metrics table: one row per logged number, written once per log line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy import case, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from thinnka.store.models import MetricRow

__all__ = ["LoggedLine", "MetricsTable", "Series"]

Series = dict[str, list[tuple[int, float]]]


class LoggedLine(Protocol):
    """One dict the trainer logged, as ``thinnka.events.metrics`` reads it from the log."""

    @property
    def stage(self) -> str: ...

    @property
    def values(self) -> Mapping[str, float]: ...

    @property
    def end(self) -> int:
        """The byte offset just after the line in the local copy of the log."""
        ...


class MetricsTable:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def position(self, run_id: str, *, counted_apart: str | None = None) -> tuple[int, int]:
        """(byte after the last stored line, how many logged steps are stored); lines of
        metrics named ``counted_apart...`` (with steps of their own) are not counted."""
        counted = (
            MetricRow.log_end
            if counted_apart is None
            else case((MetricRow.name.not_like(f"{counted_apart}%"), MetricRow.log_end))
        )
        with self._sessions() as session:
            end, lines = session.execute(
                select(func.max(MetricRow.log_end), func.count(func.distinct(counted)))
                .where(MetricRow.run_id == run_id)
            ).one()  # fmt: skip
        return int(end or 0), int(lines or 0)

    def add(self, run_id: str, lines: Sequence[LoggedLine], *, steps: Sequence[int]) -> int:
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
