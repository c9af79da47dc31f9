"""What every command does first: settings, logging, the store."""

from __future__ import annotations

import json
import os
import signal
import stat
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
    """SIGTERM (`kill`, a container stop) and SIGHUP (a closed terminal or SSH session)
    clean up like Ctrl-C: before training the run is cancelled and its pod terminated,
    during training thinnka detaches and the pod's watchdog takes over."""

    def handler(signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            _leave_the_terminal()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def _leave_the_terminal() -> None:
    """The terminal hung up: every write to it now fails (EIO), and the first failing
    event line would stop the cleanup half-way, leaving the pod running. The standard
    streams that were that terminal go to /dev/null; a pipe or a file is kept."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        null = os.fstat(devnull)
        for fd in (0, 1, 2):
            try:
                info = os.fstat(fd)
            except OSError:
                continue
            if stat.S_ISCHR(info.st_mode) and not os.path.samestat(info, null):
                os.dup2(devnull, fd)
    finally:
        os.close(devnull)
