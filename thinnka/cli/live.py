"""The live status block above a run's streamed lines on a terminal.

State, pod and GPU, elapsed time, cost so far, and the training progress
(step/total, ETA, latest loss or reward). Facts come from the run's record
(re-read at most once a second) and from what the output was told directly;
``logs -f``, which is told nothing directly, reads the latest progress event.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import RenderableType

    from thinnka.store import RunRecord, Store

__all__ = ["LiveFacts", "StatusView"]


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


@dataclass
class LiveFacts:
    """What the output was told directly (fresher than the database)."""

    stage: str | None = None
    step: int | None = None
    total: int | None = None
    eta_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)


class StatusView:
    """A rich renderable: re-reads the run at most every ``refresh_s`` seconds."""

    def __init__(self, store: Store, run_id: str, facts: LiveFacts, refresh_s: float = 1.0) -> None:
        self.store, self.run_id, self.facts, self.refresh_s = store, run_id, facts, refresh_s
        self._run: RunRecord | None = None
        self._progress: dict[str, Any] = {}
        self._read_at = 0.0

    def reread(self) -> None:
        """Read the run again at the next render (the last frame shows how it ended)."""
        self._read_at = float("-inf")

    def _refresh(self) -> None:
        if time.monotonic() - self._read_at < self.refresh_s and self._run is not None:
            return
        self._read_at = time.monotonic()
        try:
            self._run = self.store.get(self.run_id)
            self._progress = self.store.outbox.latest(self.run_id, "progress") or {}
        except Exception:  # a busy database: show the last facts
            return

    def __rich__(self) -> RenderableType:
        from thinnka.store.outbox import cost_so_far

        self._refresh()
        run = self._run
        if run is None:
            return Text(f"{self.run_id}: …")
        now = dt.datetime.now(dt.UTC)
        cost = cost_so_far(run.cost_usd, run.cost_per_hr, run.pod_started_at, run.ended_at, now)
        elapsed = ((run.ended_at or now) - run.created_at).total_seconds()
        gpu = f"{run.gpu_count}× {run.gpu_type}" if run.gpu_type else "-"
        # One line that wraps between its parts on a narrow terminal (a grid would cut the
        # pod id short; a pty whose size was never set counts as 80 columns).
        head = Text("  ").join(
            [
                Text(run.id, style="bold"),
                Text(run.state.value, style="cyan"),
                Text(f"pod {run.pod_id or '-'}"),
                Text(gpu),
                Text(f"elapsed {_clock(elapsed)}"),
                Text(f"${cost:.4f} so far"),
            ]
        )
        # The console soft-wraps (streamed lines stay whole for copying), which crops a live
        # render at the width; this line wraps instead.
        head.no_wrap, head.overflow = False, "fold"
        facts, seen = self.facts, self._progress
        step = facts.step if facts.step is not None else seen.get("step")
        total = facts.total if facts.total is not None else seen.get("total_steps")
        if not step and not total:
            return head
        eta = facts.eta_s if facts.eta_s is not None else seen.get("eta_s")
        bar = Table.grid(padding=(0, 2))
        numbers = [f"{step}/{total or '?'}", f"ETA {_clock(eta)}"]
        for key in ("loss", "reward"):
            value = facts.metrics.get(key, seen.get(key))
            if value is not None:
                numbers.append(f"{key} {float(value):.4g}")
        bar.add_row(
            Text(facts.stage or str(seen.get("stage") or "train")),
            ProgressBar(total=float(total or 1), completed=float(step or 0), width=40),
            Text("  ".join(numbers)),
        )
        return Group(head, bar)
