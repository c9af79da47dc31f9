"""What every command does first: settings, logging, the store."""

from __future__ import annotations

import json
import signal
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thinnka.operations import Session
    from thinnka.settings import Settings

__all__ = ["open_command_session", "print_json", "sigterm_as_interrupt"]


def load(env_file: str | None, log_json: bool, *, require_usable: bool = True) -> Settings:
    from thinnka.logs import configure_logging, get_logger
    from thinnka.settings import load_settings

    settings = load_settings(env_file)
    configure_logging(json=True if log_json else None, secrets=settings.secrets())
    for warning in settings.env_warnings:
        get_logger("thinnka.settings").warning(warning)
    if require_usable:  # doctor reports unusable settings instead of refusing to start
        settings.require_usable()
    return settings


def open_command_session(
    env_file: str | None, log_json: bool, *, require_usable: bool = True, read_only: bool = False
) -> Session:
    """``read_only``: the command writes nothing to the database, so it also works on one
    that cannot be written (a read-only mount)."""
    from thinnka.operations import open_session

    settings = load(env_file, log_json, require_usable=require_usable)
    return open_session(settings, read_only=read_only)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def sigterm_as_interrupt() -> None:
    """SIGTERM (a closed terminal, `kill`, a container stop) cleans up like Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
