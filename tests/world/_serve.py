"""Running an emulator by hand: the READY protocol both fakes' ``__main__`` speak."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any, Protocol

__all__ = ["serve_until_signalled"]


class _Server(Protocol):
    @property
    def port(self) -> int: ...

    def stop(self) -> None: ...


def serve_until_signalled(server: _Server, info: dict[str, Any]) -> int:
    """Print ``READY <port>`` and one JSON line, serve until SIGTERM/SIGINT, then stop."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        print(f"READY {server.port}", flush=True)
        print(json.dumps(info), flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0
