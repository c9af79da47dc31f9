"""How a command shows a run to the person at the terminal.

Not a terminal (a pipe, a file, cron): remote output lines go to stdout as
``[stage] line`` (they are the command's output), events to stderr, so
``thinnka run ... > log`` still shows them. On a terminal, a live status
block (``thinnka.cli.live``) stays at the bottom while the lines and events
scroll above it.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING, Any

from thinnka.cli.live import LiveFacts, StatusView
from thinnka.events.metrics import is_step_bar, parse_metrics

if TYPE_CHECKING:
    from thinnka.store import Store

__all__ = ["ConsoleOutput"]

_REMAINING = re.compile(r"<((?:\d+:)?\d+:\d+)")
_ERRORS = frozenset({"error", "cleanup_error", "remote_error"})


class ConsoleOutput:
    """The terminal's ``Output``: events to stderr, remote lines to stdout, live on a TTY."""

    def __init__(
        self, *, quiet: bool = False, secrets: list[str] | None = None, live: bool | None = None
    ) -> None:
        from rich.console import Console

        self.quiet = quiet
        self._secrets = [s for s in (secrets or []) if s]
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False, soft_wrap=True)
        self.live_view = (self.out.is_terminal if live is None else live) and not quiet
        self._facts = LiveFacts()
        self._view: StatusView | None = None
        self._live: Any = None
        self._last_plain = 0.0

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # ------------------------------------------------------------ live view
    def attach(self, store: Store, run_id: str) -> None:
        """Show this run's status block (on a terminal)."""
        self._facts = LiveFacts()
        self._view = StatusView(store, run_id, self._facts)
        if self._live is not None:
            self._live.update(self._view)

    def _ensure_live(self) -> Any:
        if not self.live_view or self._view is None:
            return None
        if self._live is None:
            import atexit

            from rich.live import Live

            # Whatever else writes to the terminal while the block is shown (typer.echo,
            # the log lines on stderr) must go above it through the live console: written
            # directly, it lands after the block and the next redraw erases the wrong lines.
            self._live = Live(
                self._view, console=self.out, refresh_per_second=2, transient=False,
                redirect_stdout=True, redirect_stderr=_is_terminal(sys.stderr),
            )  # fmt: skip
            _quiet_download_bars()
            self._live.start()
            atexit.register(self.close)  # a command that ends without close(): cursor back
        return self._live

    def echo(self, text: str) -> None:
        """A line of the command's own output on stdout (above the live block when shown:
        typer.echo writes past rich's redirection, after the block, and garbles it)."""
        live = self._ensure_live()
        if live is not None:
            live.console.print(text, markup=False, emoji=False, highlight=False)
            return
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    # ------------------------------------------------------------ Output
    def event(self, name: str, message: str, **fields: Any) -> None:
        if self.quiet:
            return
        from rich.markup import escape

        style = "red" if name in _ERRORS else "cyan"
        text = f"[{style}]•[/{style}] {escape(self._clean(message))}"
        live = self._ensure_live()
        (live.console if live is not None else self.err).print(text)

    def line(self, stage: str, text: str) -> None:
        values = parse_metrics(text)
        if values:
            self._facts.metrics.update(values)
        live = self._ensure_live()
        if live is not None:
            live.console.print(f"[{stage}] {self._clean(text)}", markup=False, emoji=False)
            return
        sys.stdout.write(f"[{stage}] {self._clean(text)}\n")
        sys.stdout.flush()

    def raw(self, text: str) -> None:
        """A line of the local log copy (already ``[stage] ...``), for ``logs -f``."""
        _, _, rest = text.partition("] ")
        values = parse_metrics(rest)
        if values:
            self._facts.metrics.update(values)
        live = self._ensure_live()
        if live is not None:
            live.console.print(self._clean(text), markup=False, emoji=False)
        else:
            sys.stdout.write(self._clean(text) + "\n")
            sys.stdout.flush()

    def progress(self, stage: str, done: int, total: int, text: str) -> None:
        """The trainer's step/total: the live bar on a terminal, a line every 10 s otherwise."""
        if self.quiet or total <= 0 or not is_step_bar(text):
            return
        self._facts.stage, self._facts.step, self._facts.total = stage, done, total
        match = _REMAINING.search(text)
        if match is not None:
            seconds = 0
            for part in match.group(1).split(":"):
                seconds = seconds * 60 + int(part)
            self._facts.eta_s = float(seconds)
        if self._ensure_live() is not None:
            return
        now = time.monotonic()
        if now - self._last_plain >= 10 or done >= total:
            self._last_plain = now
            self.err.print(f"[{stage}] step {done}/{total}", markup=False)

    def close(self) -> None:
        """Stop the live block, its last frame read afresh (the state the run ended in)."""
        live, self._live = self._live, None
        if live is not None:
            if self._view is not None:
                self._view.reread()
            live.refresh()
            live.stop()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced by something file-less
        return False


def _quiet_download_bars() -> None:
    """huggingface_hub's download bars (the few metadata files the checks read) redraw
    with carriage returns and cursor-up codes that would break the block."""
    try:
        from huggingface_hub.utils.tqdm import disable_progress_bars
    except ImportError:  # a huggingface_hub without the switch: its bars stay
        return
    disable_progress_bars()
