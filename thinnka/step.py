"""What one step of a run works with: its context, its result, and where it reports.

The runner builds a ``StepContext`` for each transition and records the ``StepResult`` the
handler returns; the pod helpers (``thinnka.pod``) take the same context, so this lives
below both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from thinnka.errors import StepTimeout

if TYPE_CHECKING:
    from thinnka.services import Services
    from thinnka.settings import Settings
    from thinnka.store import RunRecord

__all__ = ["Output", "StepContext", "StepResult"]


class Output(Protocol):
    """Where a step reports to the person watching (terminal, webhook, Discord)."""

    def event(self, name: str, message: str, **fields: Any) -> None: ...

    def line(self, stage: str, text: str) -> None: ...

    def progress(self, stage: str, done: int, total: int, text: str) -> None:
        """Optional: the trainer's step count (parsed from its progress bar)."""


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
