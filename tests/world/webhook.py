"""A webhook receiver on 127.0.0.1 that records what it is sent (JSON bodies).

It can play a rate-limited Discord: chosen requests (by number, counting
from 1) are answered 429 with ``retry_after`` in the JSON body and the
``Retry-After``/``X-RateLimit-*`` headers; others with a chosen status; and
it can be "down" (503 to everything) or slow, or trickle: answer with a status line
and then one header line every ``trickle_s`` seconds, never ending the headers (a
client's per-read timeout never trips; only a total deadline ends the request).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    def __init__(self, path: str = "/hook") -> None:
        self.path = path
        self.received: list[dict[str, Any]] = []  # accepted bodies, in order
        self.requests = 0  # every request, accepted or not
        self.throttle = 0  # answer this many next requests with 429
        self.throttle_at: set[int] = set()  # request numbers answered with 429
        self.status_at: dict[int, int] = {}  # request number -> status to answer
        self.retry_after = 0.05
        self.down = False  # answer 503 to everything
        self.delay_s = 0.0
        self.trickle_s = 0.0  # > 0: trickle header lines at this pace (see the docstring)
        self.trickled = 0  # requests that were answered by trickling
        self.paths: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                if receiver.trickle_s:
                    self._trickle()
                    return
                with receiver._lock:
                    receiver.requests += 1
                    receiver.paths.add(self.path)
                    number = receiver.requests
                    if receiver.down:
                        self._answer(503, b"down")
                        return
                    if receiver.throttle > 0 or number in receiver.throttle_at:
                        receiver.throttle = max(0, receiver.throttle - 1)
                        wait = receiver.retry_after
                        self._answer(429, json.dumps({"retry_after": wait}).encode(), {
                            "Retry-After": str(max(1, round(wait))),
                            "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset-After": str(wait),
                        })  # fmt: skip
                        return
                    if number in receiver.status_at:
                        self._answer(receiver.status_at[number], b"no")
                        return
                    receiver.received.append(json.loads(body))
                self._answer(204, b"")

            def _trickle(self) -> None:
                with receiver._lock:
                    receiver.requests += 1
                    receiver.trickled += 1
                self.close_connection = True
                deadline = time.monotonic() + 300  # a test's whole life, never more
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    self.wfile.flush()
                    while time.monotonic() < deadline:
                        if receiver._stopping.wait(receiver.trickle_s):
                            return
                        self.wfile.write(b"X-Trickle: still-coming\r\n")
                        self.wfile.flush()
                except OSError:
                    return  # the client gave up: what a bounded client does

            def _answer(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def events(self) -> list[str]:
        with self._lock:
            return [item.get("event", "") for item in self.received]
