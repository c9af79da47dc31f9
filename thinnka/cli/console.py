"""How a command shows a run to the person at the terminal.

Remote output lines go to stdout as ``[stage] line`` (they are the command's
output); events go to stderr, so ``thinnka run ... > log`` still shows them.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ConsoleOutput"]


class ConsoleOutput:
    """The terminal's ``Output``: events to stderr, remote lines to stdout."""

    def __init__(self, *, quiet: bool = False, secrets: list[str] | None = None) -> None:
        from rich.console import Console

        self.quiet = quiet
        self._secrets = [s for s in (secrets or []) if s]
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

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
