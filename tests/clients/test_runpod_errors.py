"""Every httpx error and every malformed Runpod answer becomes a thinnka error at the client.

The httpx classes are enumerated from the installed library. Malformed answers come from a
tiny real HTTP server on 127.0.0.1 that answers what each test queues (the Runpod emulator
answers only well-formed GraphQL).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from thinnka.clients.runpod.graphql import GraphQLRunpod
from thinnka.clients.runpod.rest import RestRunpod
from thinnka.clients.runpod.transport import classify_transport_error
from thinnka.errors import (
    AuthError,
    ConfigError,
    RemoteError,
    ThinnkaError,
    TransientError,
)

pytestmark = pytest.mark.timeout(60)


def _httpx_errors() -> list[type[Exception]]:
    return sorted(
        (
            value
            for _, value in inspect.getmembers(httpx, inspect.isclass)
            if issubclass(value, Exception) and value.__module__.startswith("httpx")
        ),
        key=lambda cls: cls.__name__,
    )


def _instance(cls: type[Exception]) -> Exception:
    request = httpx.Request("POST", "https://api.runpod.test/graphql")
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("boom", request=request, response=httpx.Response(500, request=request))
    for args in (("boom",), ()):
        try:
            return cls(*args, request=request)  # type: ignore[call-arg]
        except TypeError:
            try:
                return cls(*args)
            except TypeError:
                continue
    raise AssertionError(f"cannot build {cls}")


HTTPX_ERRORS = _httpx_errors()
EXPECTED: dict[str, type[ThinnkaError]] = {
    "ConnectError": TransientError, "ConnectTimeout": TransientError,
    "ReadTimeout": TransientError, "RemoteProtocolError": TransientError,
    "ReadError": TransientError, "DecodingError": TransientError,
    "InvalidURL": ConfigError, "UnsupportedProtocol": ConfigError,
    "TooManyRedirects": RemoteError,
}  # fmt: skip


def test_the_enumeration_sees_the_hierarchy() -> None:
    names = {cls.__name__ for cls in HTTPX_ERRORS}
    assert {"HTTPError", "TransportError", "TimeoutException", "InvalidURL"} <= names


@pytest.mark.parametrize("cls", HTTPX_ERRORS, ids=lambda c: c.__name__)
def test_every_httpx_error_becomes_a_thinnka_error(cls: type[Exception]) -> None:
    translated = classify_transport_error(_instance(cls))
    assert isinstance(translated, ThinnkaError) and translated.reason
    if cls.__name__ in EXPECTED:
        assert type(translated) is EXPECTED[cls.__name__], translated.message


# ---------------------------------------------------------------- malformed answers
@dataclass
class Answer:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


class _Queue(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: list[Answer] = []
        self.requests = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Queue

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1
        answer = (
            self.server.answers[0] if len(self.server.answers) == 1 else self.server.answers.pop(0)
        )
        self.send_response(answer.status)
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST  # REST v2 reads with GET; the same queue of answers serves both

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[_Queue]:
    queue = _Queue()
    thread = threading.Thread(target=queue.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield queue
    queue.shutdown()
    queue.server_close()
    thread.join(timeout=5)


def _client(server: _Queue) -> GraphQLRunpod:
    host, port = server.server_address[:2]
    return GraphQLRunpod(f"http://{host}:{port}", "rpa_test", attempts=2, backoff_max=0.01)


def test_an_answer_that_is_not_json_is_retried_then_transient(server: _Queue) -> None:
    server.answers = [
        Answer(b"<html>502 Bad Gateway</html>", headers={"Content-Type": "text/html"})
    ]
    with pytest.raises(TransientError, match="not JSON"):
        _client(server).list_pods()
    assert server.requests == 2


def test_an_undecodable_body_is_transient(server: _Queue) -> None:
    server.answers = [Answer(b"\xff\xfe not utf-8 \xff")]
    with pytest.raises(TransientError):
        _client(server).list_pods()
    server.answers = [Answer(b"garbage", headers={"Content-Encoding": "gzip"})]
    with pytest.raises(TransientError, match="decoded"):
        _client(server).list_pods()


def test_rest_translates_the_same_httpx_errors(server: _Queue) -> None:
    """REST v2 shares the translation: an undecodable body and an unusable URL are thinnka
    errors (httpx.DecodingError escaped it before, and an ftp URL was retried as "unreachable")."""
    host, port = server.server_address[:2]
    rest = RestRunpod(f"http://{host}:{port}", "rpa_test", attempts=2, backoff_max=0.01)
    server.answers = [Answer(b"garbage", headers={"Content-Encoding": "gzip"})]
    with pytest.raises(TransientError, match="decoded"):
        rest.list_pods()
    with pytest.raises(ConfigError, match="RUNPOD_API_BASE_URL"):
        RestRunpod("ftp://127.0.0.1:9", "rpa_test", attempts=5, backoff_max=0.01).list_pods()


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'{"data": ["pods"]}',
        b'{"data": {"pod": {"name": "no id"}}}',
        b'{"data": {"myself": {"pods": [{"name": "no id"}]}}}',
        b'{"data": {"gpuTypes": [{"displayName": "A100", "id": 7, "lowestPrice": 3}]}}',
    ],
)
def test_json_of_the_wrong_shape_is_a_remote_error(server: _Queue, body: bytes) -> None:
    server.answers = [Answer(body)]
    runpod = _client(server)
    refused = 0
    for call in (lambda: runpod.get_pod("p1"), runpod.list_pods, lambda: runpod.gpu_offers(1)):
        try:
            call()  # an answer may fit another call's shape (e.g. "no pods at all")
        except ThinnkaError as exc:
            assert isinstance(exc, RemoteError) and not exc.retryable, exc
            refused += 1
    assert refused >= 1


def test_graphql_errors_that_are_plain_strings_are_still_classified(server: _Queue) -> None:
    server.answers = [Answer(b'{"errors": ["Unauthorized request"]}')]
    with pytest.raises(AuthError):
        _client(server).list_pods()
