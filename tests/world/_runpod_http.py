"""HTTP layer of the fake Runpod: routing, transport faults, auth extraction, test controls.

Why stdlib `http.server`: a real socket on 127.0.0.1 with keep-alive is all clients need, it
starts in milliseconds, and it lets faults act at the transport level (429/5xx before any
routing, or a dropped connection with no status line) the way a proxy in front of Runpod would.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.world._random_faults import Hit
from tests.world._runpod_podkeys import handle_pod_scoped, is_pod_key
from tests.world._runpod_records import Fault, RunpodError
from tests.world._runpod_rest import TITLES, handle_v2
from tests.world._runpod_schema import run_graphql
from tests.world._runpod_v2state import RequestRecord

if TYPE_CHECKING:
    from tests.world.runpod import FakeRunpod

__all__ = ["Server", "make_server"]

Reply = tuple[int, Any, str, dict[str, str]]  # status, JSON body or None, content type, headers


class Server(ThreadingHTTPServer):
    """Threaded server whose handlers reach the emulator through `server.fake`.

    It tracks open connections so that `close_connections` can cut idle keep-alive sockets on
    stop; otherwise their daemon threads would keep answering after the emulator "went away".
    """

    daemon_threads = True
    allow_reuse_address = True
    fake: FakeRunpod

    def server_activate(self) -> None:
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._live_lock:
            self._live.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._live_lock:
            self._live.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._live_lock:
            live, self._live = self._live, set()
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _control(fake: FakeRunpod, method: str, name: str, body: dict[str, Any]) -> Any:
    """The HTTP control surface: the same operations as the Python API, JSON in and out."""
    if method == "GET":
        readers: dict[str, Callable[[], Any]] = {
            "info": fake.info,
            "ledger": lambda: {
                "entries": [{**asdict(e), "terminated": e.terminated} for e in fake.ledger()]
            },
            "pods": lambda: {"pods": [asdict(p) for p in fake.pods(body.get("account_id"))]},
            "requests": lambda: {"requests": [asdict(r) for r in fake.requests()]},
            "injected_faults": fake.injected_faults,
        }
        return readers[name]()
    writers: dict[str, Callable[[], Any]] = {
        "reset": fake.reset,
        "stock": lambda: fake.set_stock(body["gpu_type_id"], body["stock"]),
        "faults": lambda: fake.inject_faults(**body),
        "clear_faults": fake.clear_faults,
        "random_faults": lambda: fake.random_faults(**body),
        "latency": lambda: fake.set_latency(float(body["seconds"])),
        "boot_delay": lambda: fake.set_boot_delay(float(body["seconds"])),
        "never_boot": lambda: fake.never_boot(bool(body.get("enabled", True)), body.get("pod_id")),
        "kill": lambda: fake.kill_pod(body["pod_id"], vanish=bool(body.get("vanish"))),
        "lose": lambda: fake.lose_pod(body["pod_id"]),
        "foreign_pod": lambda: {"id": fake.add_foreign_pod(**body)},
        "advance": lambda: fake.advance_time(float(body["seconds"])),
        "accounts": lambda: asdict(fake.add_account(body.get("pub_key", ""))),
        "pub_key": lambda: fake.set_pub_key(body["pub_key"], body.get("account_id")),
        # REST v2 scripting
        "cloud_capacity": lambda: fake.set_cloud_capacity(
            body["gpu_type_id"], body["cloud"], bool(body["available"])
        ),
        "balance_exhausted": lambda: fake.set_balance_exhausted(bool(body.get("exhausted", True))),
        "forbid_pool": lambda: fake.forbid_pool(body["gpu_type_id"]),
        "community_public_ip": lambda: fake.set_community_public_ip(bool(body["enabled"])),
        "running_at_once": lambda: fake.set_running_at_once(bool(body.get("enabled", True))),
        "billing_delay": lambda: fake.set_billing_delay(float(body["seconds"])),
        "rate_limit": lambda: fake.set_rate_limit(
            *((str(n), int(q), float(w)) for n, q, w in body["windows"])
        ),
        "fail_pod": lambda: fake.fail_pod(body["pod_id"]),
    }
    return writers[name]()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind Cloudflare
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server: Server
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: test output should show the client's view, not an access log."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake = self.server.fake
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = ...  # unparseable: each surface answers in its own error shape
        if url.path.startswith("/_control/"):
            self._answer_control(fake, method, url.path.removeprefix("/_control/"), body)
            return
        world = fake.world
        key = self._key(url.query)
        rest = url.path.startswith("/v2/")
        surface = "v2" if rest else "graphql" if url.path == "/graphql" else "other"
        text = f"{method} {url.path} {raw.decode('utf-8', 'replace')}"
        fault = world.take_fault(text)
        if fault is not None and fault.kind == "delay":  # a slow answer, then the real one
            time.sleep(fault.delay_s)
            fault = None
        lost: Fault | None = None  # a random fault that comes after routing
        if fault is None:
            fault, lost = self._random_fault(method, url.path, body)
        if world.latency > 0:
            time.sleep(world.latency)
        if fault is None:
            try:
                reply = self._route(method, url.path, url.query, body, key)
            except Exception as exc:  # an emulator bug: make it loud, never a silent hang
                traceback.print_exc(file=sys.stderr)
                message = f"fake runpod internal error: {exc!r}"
                reply = (500, {"errors": [{"message": message}]}, "application/json", {})
            # A fault after routing: the request took effect, then its answer is lost.
            fault = world.take_fault(text, after=True) or lost
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay_s)  # the request took effect; its answer comes late
            fault = None
        status = 0 if fault is not None and fault.kind == "drop" else None
        if fault is not None and fault.kind == "status":
            status = fault.status
        world.log_request(
            RequestRecord(
                method,
                url.path,
                surface,
                world.key_kind(key),
                status if status is not None else reply[0],
                time.time(),
            )
        )
        if fault is not None and fault.kind == "drop":
            self.close_connection = True  # no status line at all: the client sees EOF
            return
        if fault is not None:
            self._send_fault(fault.status, fault.retry_after, rest=rest)
            return
        code, payload, content_type, headers = reply
        self._send(code, payload, content_type=content_type, headers=headers)

    def _random_fault(self, method: str, path: str, body: Any) -> tuple[Fault | None, Fault | None]:
        """(before routing, after routing): at most one of them, when random faults are on."""
        random_faults = self.server.fake.world.random_faults
        if random_faults is None:
            return None, None
        agent = self.headers.get("User-Agent", "")
        hit = random_faults.draw(method, path, detail=_detail(body), user_agent=agent)
        if hit is None:
            return None, None
        fault = _as_fault(hit, random_faults.retry_after)
        return (None, fault) if hit.after else (fault, None)

    def _route(self, method: str, path: str, query: str, body: Any, key: str | None) -> Reply:
        world = self.server.fake.world
        if is_pod_key(world, key):  # a pod's own key: it may only terminate its pod
            status, payload, content_type = handle_pod_scoped(
                world, str(key), method, path, None if body is ... else body
            )
            return status, payload, content_type, {}
        if path == "/graphql" and method == "POST":
            reply = run_graphql(world, None if body is ... else body, world.resolve_key(key))
            return reply.status, reply.body, "application/json", {}
        if path.startswith("/v2/"):
            return handle_v2(world, method, path, query, None if body is ... else body, key)
        return 404, {"errors": [{"message": f"Cannot {method} {path}"}]}, "application/json", {}

    def _send_fault(self, status: int, retry_after: float | None, *, rest: bool) -> None:
        """An injected status in the surface's own error shape (problem+json on REST v2)."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        message = _REASONS.get(status, "Error")
        if rest:
            problem = {"title": TITLES.get(status, "Error"), "status": status, "detail": message}
            self._send(status, problem, content_type="application/problem+json", headers=headers)
        else:
            self._send(status, {"errors": [{"message": message}]}, headers=headers)

    def _answer_control(self, fake: FakeRunpod, method: str, name: str, body: Any) -> None:
        try:
            result = _control(fake, method, name, body if isinstance(body, dict) else {})
        except KeyError as exc:
            self._send(404, {"error": f"unknown control or id: {exc}"})
        except (TypeError, ValueError, RunpodError) as exc:
            self._send(400, {"error": str(exc)})
        else:
            self._send(200, result if result is not None else {"ok": True})

    def _key(self, query: str) -> str | None:
        """Bearer header (what SDK 1.12.0 sends), else the legacy `?api_key=` parameter."""
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        return (parse_qs(query).get("api_key") or [None])[0]

    def _send(
        self,
        status: int,
        payload: Any,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _detail(body: Any) -> str:
    """What tells GraphQL requests apart (they share one path): the query's first words."""
    if isinstance(body, dict) and isinstance(body.get("query"), str):
        return " ".join(body["query"].split())[:60]
    return ""


def _as_fault(hit: Hit, retry_after: float) -> Fault:
    """A random fault in the shape of a queued one."""
    if hit.kind == "drop":
        return Fault("drop")
    status = int(hit.kind)
    return Fault("status", status, retry_after=retry_after if status == 429 else None)


_REASONS = {
    429: "Too Many Requests",
    500: "Something went wrong. Please try again later or contact support.",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def make_server(fake: FakeRunpod, address: tuple[str, int]) -> Server:
    """Bind (port 0 picks a free port) without serving yet."""
    server = Server(address, _Handler)
    server.fake = fake
    return server
