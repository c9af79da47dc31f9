"""Transport-neutral request/response objects and path parsing for the fake Hub routes.

Routes take a `Request` and return a `Response`; only `_hub_http` knows about sockets. The
path is split on `/` **before** percent-decoding (docs/hub.md, "Paths"): `revision` arrives encoded
with no safe characters (`refs%2Fpr%2F1`) and tree paths as one encoded segment, while
`repo_id` and resolve filenames keep their slashes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote

from tests.world._hub_model import HubError, RepoType, Token

__all__ = [
    "PREFIX_OF",
    "REPO_TYPES",
    "Request",
    "Response",
    "as_repo_type",
    "error_response",
    "json_response",
    "repo_url",
    "split_repo",
]

# URL plural → repo type, for `/api/{models,datasets,spaces}/...` and resolve prefixes.
REPO_TYPES: dict[str, RepoType] = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX_OF: dict[RepoType, str] = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass
class Request:
    """One parsed HTTP request; `token` is filled in by the server after authentication."""

    method: str
    raw_path: str
    query_string: str
    headers: Mapping[str, str]
    body: bytes = b""
    token: Token | None = None
    segments: list[str] = field(init=False)
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.segments = [unquote(s) for s in self.raw_path.strip("/").split("/") if s]
        self.query = parse_qs(self.query_string, keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        """Query boolean as huggingface_hub sends it (`true`/`false`, sometimes `1`)."""
        return (self.arg(name) or "").lower() in ("1", "true", "yes")

    def json(self) -> Any:
        """Body as JSON; a malformed body is a 400 like the Hub's."""
        try:
            return json.loads(self.body or b"{}")
        except ValueError as exc:
            raise HubError(400, f"Invalid JSON body: {exc}") from exc

    def form(self) -> dict[str, list[str]]:
        """Body as form fields (paths-info), accepting JSON too (huggingface.js sends JSON)."""
        ctype = self.headers.get("content-type", "")
        if "json" in ctype:
            data = self.json()
            return {k: v if isinstance(v, list) else [str(v)] for k, v in data.items()}
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)


@dataclass
class Response:
    """Status, headers and body; the server adds `Content-Length` and drops the body on HEAD."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """JSON answer with the content type the Hub uses."""
    out = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return Response(status, out, json.dumps(data).encode())


def error_response(exc: HubError) -> Response:
    """The wire form of a `HubError`: JSON `error` + `X-Error-Message` (+ `X-Error-Code`)."""
    headers = {"X-Error-Message": exc.message, **exc.headers}
    if exc.code:
        headers["X-Error-Code"] = exc.code
    return json_response({"error": exc.message, **exc.body}, exc.status, headers)


def split_repo(segments: list[str], keywords: frozenset[str]) -> tuple[str, list[str]]:
    """Split `ns/name/<rest>` (or legacy `name/<rest>`) into repo id and the remaining segments.

    A second segment that is a route keyword (`revision`, `tree`, `resolve`...) means the id
    has one segment, as with `gpt2`.
    """
    if not segments:
        raise HubError(404, "Repository not found", code="RepoNotFound")
    if len(segments) >= 2 and segments[1] not in keywords:
        return f"{segments[0]}/{segments[1]}", segments[2:]
    return segments[0], segments[1:]


def repo_url(endpoint: str, repo_type: RepoType, repo_id: str) -> str:
    """Web URL of a repo as the Hub returns it (`create_repo`'s `url`)."""
    return f"{endpoint}/{PREFIX_OF[repo_type]}{repo_id}"


def as_repo_type(value: str | None) -> RepoType:
    """`type` field of create/delete bodies → repo type (model when absent)."""
    value = value or "model"
    if value not in ("model", "dataset", "space"):
        raise HubError(400, f"Invalid repo type: {value}")
    return cast(RepoType, value)
