"""HTTP front of the fake Hub: a stdlib threaded server, body handling and routing.

Follows the Hub's transport rules (docs/hub.md): HTTP/1.1 keep-alive with an exact
`Content-Length` on every answer (HEAD included), the request body always read first (also on
errors, or the next request on the connection is corrupted), chunked request bodies accepted,
no redirects (unless a test asks for the real Hub's on `resolve`), no compression. A bug inside
the fake answers 501, which huggingface_hub does not retry (a 500 would make the client back
off for ~23 s), and is kept in `errors`.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn

from tests.world import _hub_routes_read as read
from tests.world import _hub_routes_write as write
from tests.world._hub_control import ControlHooks, handle_control
from tests.world._hub_model import HubError, RequestRecord
from tests.world._hub_state import HubState
from tests.world._hub_wire import REPO_TYPES, Request, Response, error_response, json_response
from tests.world._hub_wire import split_repo as _split
from tests.world._random_faults import Hit, RandomFaults

__all__ = ["DropConnection", "HubServer", "dispatch"]

_API_KEYWORDS = frozenset({
    "revision", "tree", "paths-info", "preupload", "commit", "auth-check", "refs", "commits",
    "xet-read-token", "xet-write-token", "discussions", "treesize", "parquet", "resolve",
})  # fmt: skip
_LFS_TAIL = ["info", "lfs", "objects", "batch"]


class DropConnection(Exception):
    """An injected fault: close the connection without answering."""


def dispatch(state: HubState, hooks: ControlHooks, req: Request) -> Response:
    """Route one request; raises `HubError` for every Hub-shaped failure."""
    segs = req.segments
    if segs[:1] == ["_control"]:
        return handle_control(state, hooks, req)
    fault = state.take_fault(req.method, req.raw_path)
    if fault is not None and fault.action == "drop":
        raise DropConnection(req.raw_path)
    if fault is not None and fault.action == "delay":
        time.sleep(fault.delay_s)  # then answer normally: a slow Hub, or a timeout
    elif fault is not None:
        raise HubError(fault.status, fault.message, code=fault.code)
    hit = None
    if state.random_faults is not None:
        agent = req.headers.get("user-agent", "")
        hit = state.random_faults.draw(req.method, req.raw_path, user_agent=agent)
    if hit is not None and not hit.after:
        _random_failure(hit, state.random_faults)
    resp = _route(state, req, segs)
    if hit is not None:  # it was done; now its answer is replaced or lost
        _random_failure(hit, state.random_faults)
    return resp


def _random_failure(hit: Hit, faults: RandomFaults | None) -> NoReturn:
    if hit.kind == "drop":
        raise DropConnection(hit.kind)
    if hit.kind == "429":
        retry_after = f"{faults.retry_after if faults else 1.0:g}"
        raise HubError(429, "Too Many Requests", headers={"Retry-After": retry_after})
    raise HubError(500, "Internal Error")


def _route(state: HubState, req: Request, segs: list[str]) -> Response:
    if segs[:2] == ["_lfs", "upload"] and len(segs) == 3 and req.method == "PUT":
        return write.lfs_upload(state, req, segs[2])  # presigned-URL style: no auth header
    req.token = state.authenticate(req.headers.get("authorization"))
    if segs[:2] == ["_lfs", "verify"] and req.method == "POST":
        return write.lfs_verify(state, req)
    if segs[:1] == ["api"]:
        return _api(state, req, segs[1:])
    return _web(state, req, segs)


def _api(state: HubState, req: Request, segs: list[str]) -> Response:
    route = (req.method, *segs[:2])
    if route == ("GET", "whoami-v2"):
        return read.whoami(state, req)
    if route == ("GET", "agent-harnesses"):
        return json_response({"standardEnvVars": [], "harnesses": {}})
    if route[:2] in (("GET", "resolve-cache"), ("HEAD", "resolve-cache")):
        return _resolve_cache(state, req, segs[1:])
    if route == ("POST", "validate-yaml"):
        return write.validate_yaml(state, req)
    if route == ("POST", "repos", "create"):
        return write.create_repo(state, req)
    if route == ("DELETE", "repos", "delete"):
        return write.delete_repo(state, req)
    if not segs or segs[0] not in REPO_TYPES:
        raise HubError(
            404, f"Sorry, we can't find the page you are looking for: /api/{'/'.join(segs)}"
        )
    repo_type = REPO_TYPES[segs[0]]
    repo_id, rest = _split(segs[1:], _API_KEYWORDS)
    repo = state.visible_repo(req.token, repo_type, repo_id)
    verb = (req.method, rest[0] if rest else "")
    if verb == ("GET", "") and not rest:
        return read.repo_info(state, req, repo, None)
    if verb == ("GET", "revision") and len(rest) == 2:
        return read.repo_info(state, req, repo, rest[1])
    if verb == ("GET", "tree") and len(rest) >= 2:
        return read.tree(state, req, repo, rest[1], "/".join(rest[2:]))
    if verb == ("POST", "paths-info") and len(rest) == 2:
        return read.paths_info(state, req, repo, rest[1])
    if verb == ("POST", "preupload") and len(rest) == 2:
        return write.preupload(state, req, repo, rest[1])
    if verb == ("POST", "commit") and len(rest) == 2:
        return write.commit(state, req, repo, rest[1])
    if verb == ("GET", "auth-check"):
        return read.auth_check(state, req, repo, write=rest[1:] == ["write"])
    if verb == ("GET", "refs"):
        return read.refs(state, req, repo)
    if verb == ("GET", "commits") and len(rest) == 2:
        return read.commits(state, req, repo, rest[1])
    if verb[1] in ("xet-read-token", "xet-write-token"):
        raise HubError(404, "Xet is not enabled on this fake Hub: set HF_HUB_DISABLE_XET=1")
    raise HubError(404, f"Sorry, the fake Hub does not implement {req.method} {req.raw_path}")


def _resolve_cache(state: HubState, req: Request, segs: list[str]) -> Response:
    """`/api/resolve-cache/{type}s/{ns}/{name}/{commit}/{path}`: where the real Hub's
    resolve redirects a small file (two-segment repo ids only)."""
    if len(segs) < 5 or segs[0] not in REPO_TYPES:
        raise HubError(404, f"Sorry, the fake Hub does not implement {req.raw_path}")
    repo = state.visible_repo(req.token, REPO_TYPES[segs[0]], f"{segs[1]}/{segs[2]}")
    return read.resolve(state, req, repo, segs[3], "/".join(segs[4:]), cached=True)


def _web(state: HubState, req: Request, segs: list[str]) -> Response:
    repo_type = "model"
    if segs and segs[0] in ("datasets", "spaces"):
        repo_type = REPO_TYPES[segs[0]]
        segs = segs[1:]
    if segs[-4:] == _LFS_TAIL and req.method == "POST" and len(segs) in (5, 6):
        repo_id = "/".join(segs[:-4]).removesuffix(".git")
        repo = state.visible_repo(req.token, repo_type, repo_id)
        return write.lfs_batch(state, req, repo)
    repo_id, rest = _split(segs, frozenset({"resolve", "raw"}))
    if len(rest) >= 3 and rest[0] in ("resolve", "raw") and req.method in ("GET", "HEAD"):
        repo = state.visible_repo(req.token, repo_type, repo_id)
        return read.resolve(state, req, repo, rest[1], "/".join(rest[2:]))
    raise HubError(404, f"Sorry, the fake Hub does not implement {req.method} {req.raw_path}")


class _Handler(BaseHTTPRequestHandler):
    """One connection; methods all funnel into `_handle`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server: HubServer
    timeout = 120  # idle keep-alive connections eventually release their thread

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the request log has it
        return

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(self.command, path, query, headers, body)
        state = self.server.state
        try:
            resp = dispatch(state, self.server.hooks, req)
        except DropConnection:  # logged with status 0: tests count the attempts
            state.log_request(RequestRecord(self.command, path, query, 0, None, time.time()))
            self.close_connection = True
            return
        except HubError as exc:
            resp = error_response(exc)
        except Exception as exc:  # a fake bug must not look like a retryable 5xx
            tb = traceback.format_exc()
            self.server.errors.append(f"{self.command} {self.path}\n{tb}")
            print(f"fake hub internal error on {self.command} {self.path}:\n{tb}", file=sys.stderr)
            resp = error_response(HubError(501, f"fake hub internal error: {exc!r}"))
        # Logged before answering: a client that got its response must find it in the log.
        if not path.startswith("/_control"):
            user = req.token.user if req.token else None
            state.log_request(
                RequestRecord(self.command, path, query, resp.status, user, time.time())
            )
        try:
            self.send_response(resp.status)
            for key, value in resp.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            self.close_connection = True


class HubServer(ThreadingHTTPServer):
    """Threaded loopback server bound to a port (0 = any free one), served in a daemon thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, state: HubState, hooks: ControlHooks, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__((host, port), _Handler)
        self.state = state
        self.hooks = hooks
        self.errors: list[str] = []
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self.server_address[1])

    def start(self) -> None:
        """Serve in a background daemon thread."""
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-hub-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
