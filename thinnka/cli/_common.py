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


def load(env_file: str | None, log_json: bool) -> Settings:
    from thinnka.logs import configure_logging
    from thinnka.settings import load_settings

    settings = load_settings(env_file)
    configure_logging(json=True if log_json else None, secrets=settings.secrets())
    return settings


def open_command_session(env_file: str | None, log_json: bool) -> Session:
    from thinnka.operations import open_session

    return open_session(load(env_file, log_json))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def sigterm_as_interrupt() -> None:
    """SIGTERM (a closed terminal, `kill`, a container stop) cleans up like Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
