"""Logging: structlog to stderr, human on a TTY, JSON otherwise.

stdout is for command output only. Libraries that log through the standard
library (httpx, alembic, paramiko, transitions) are rendered by the same
processors through ``ProcessorFormatter``, so every line has one format and
carries the ``run_id`` bound while a run is driven. A scrubbing processor
replaces known secret values wherever they might appear.
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


def _scrub(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    if not _SECRETS:
        return event_dict
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


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
        _scrub,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
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
            *([structlog.processors.dict_tracebacks] if json else []),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty libraries: their INFO lines are noise for a CLI user.
    for name in ("httpx", "httpcore", "paramiko", "transitions", "alembic", "filelock"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
