"""Logging: structlog to stderr, human on a TTY, JSON otherwise.

stdout is for command output only. Libraries that log through the standard
library (httpx, alembic, paramiko, transitions) are rendered by the same
processors through ``ProcessorFormatter``, so every line has one format and
carries the ``run_id`` bound while a run is driven. Exceptions are rendered
without frame locals (a library's frames hold tokens), and the scrubber runs
on the finished line, so a secret is replaced wherever it appears: in an
event, a field, an exception message or a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger", "redact"]

_SECRETS: list[str] = []


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Replace every known secret value in ``text`` with ``***``."""
    for secret in secrets if secrets is not None else _SECRETS:
        if secret:
            text = text.replace(secret, "***")
    return text


def _scrub_event(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    if not _SECRETS:
        return event_dict
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


def _scrub_rendered(_logger: Any, _name: str, line: Any) -> Any:
    """The last processor: the rendered line itself, tracebacks included."""
    return redact(line) if isinstance(line, str) else line


def configure_logging(
    *, json: bool | None = None, level: int = logging.INFO, secrets: Iterable[str] = ()
) -> None:
    """Set up structlog and the stdlib bridge; call once per command."""
    _SECRETS[:] = [s for s in secrets if s]
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _scrub_event,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )
    )
    # structlog's dict_tracebacks shows every frame's locals; never render them.
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([tracebacks] if json else []),
            renderer,
            _scrub_rendered,
        ],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty libraries: their INFO lines are noise for a CLI user.
    for name in ("httpx", "httpcore", "paramiko", "transitions", "alembic", "filelock"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (as ``logging.lastResort`` does), so
    the terminal's live view can route log lines above its status block while it shows."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        """StreamHandler's own assignment; the stream is always the current stderr."""


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
