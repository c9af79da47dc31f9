"""How a command shows a run to the person at the terminal.

Remote output lines go to stdout as ``[stage] line`` (they are the command's
output); events go to stderr, so ``thinnka run ... > log`` still shows them.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["ConsoleOutput"]


class ConsoleOutput:
    """The terminal's ``Output``: events to stderr, remote lines to stdout."""

    def __init__(self, *, quiet: bool = False, secrets: list[str] | None = None) -> None:
        from rich.console import Console

        self.quiet = quiet
        self._secrets = [s for s in (secrets or []) if s]
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self._bar: Any = None
        self._task: Any = None
        self._last_plain = 0.0

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def event(self, name: str, message: str, **fields: Any) -> None:
        if self.quiet:
            return
        from rich.markup import escape

        style = "red" if name in ("error", "cleanup_error", "remote_error") else "cyan"
        self.err.print(f"[{style}]•[/{style}] {escape(self._clean(message))}")

    def line(self, stage: str, text: str) -> None:
        sys.stdout.write(f"[{stage}] {self._clean(text)}\n")
        sys.stdout.flush()

    def progress(self, stage: str, done: int, total: int, text: str) -> None:
        """The trainer's step/total: a live bar on a terminal, a line every 10 s otherwise."""
        if self.quiet or total <= 0:
            return
        if not self.err.is_terminal:
            now = time.monotonic()
            if now - self._last_plain >= 10 or done >= total:
                self._last_plain = now
                self.err.print(f"[{stage}] step {done}/{total}", markup=False)
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        if self._bar is None:
            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self.err,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(stage, total=total)
        self._bar.update(self._task, completed=done, total=total, description=stage)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = self._task = None
