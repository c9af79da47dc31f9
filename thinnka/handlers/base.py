"""What a transition handler is, and what it gets to work with.

A handler does the work of one transition and returns what to record. It
never writes the run's state: the runner fires the trigger and persists the
result with a guarded write. Handlers must be idempotent — the process may
die at any line, and the next ``resume`` runs the same handler again from the
facts recorded so far — and must finish before ``ctx.deadline``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from thinnka.errors import StepTimeout
from thinnka.records import Output

if TYPE_CHECKING:
    from thinnka.services import Services
    from thinnka.settings import Settings
    from thinnka.store import RunRecord

__all__ = ["Handler", "Output", "StepContext", "StepResult"]


@dataclass(frozen=True)
class StepResult:
    """The outcome of a handler: a message for the event row, facts to record."""

    message: str
    updates: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    """Everything a handler may use; built by the runner for one step."""

    run: RunRecord
    settings: Settings
    services: Services
    output: Output
    deadline: float  # time.monotonic() value
    record: Callable[[Mapping[str, Any]], RunRecord]
    note: Callable[[str, str], None]
    check_cancelled: Callable[[], None]

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise StepTimeout(f"{what} did not finish before its deadline.")

    def save(self, **facts: Any) -> RunRecord:
        """Record facts now (e.g. a pod id right after creation) and refresh ``run``."""
        self.run = self.record(facts)
        return self.run


class Handler(Protocol):
    """One transition's work. ``trigger`` names the transition it serves."""

    @property
    def trigger(self) -> str:
        """The trigger of the transition it serves (a class attribute in most handlers)."""
        ...

    def timeout_s(self, run: RunRecord) -> float:
        """How long the step may take for this run."""
        ...

    def run(self, ctx: StepContext) -> StepResult: ...
