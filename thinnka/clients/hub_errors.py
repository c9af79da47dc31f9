"""huggingface_hub's exceptions, and its HTTP library's, as thinnka's (one place for the rules).

huggingface_hub 1.x talks HTTP through ``httpx``, 2.x through ``httpx2``; either may be
absent, so both are looked up lazily. The rules, most specific first:

- a gated or missing model is a ``PreflightError`` while checking a run (``preflight``),
  otherwise ``AuthError`` / ``NotFoundError``;
- an HTTP answer maps by status: 401/403 ``AuthError``, 404/410 ``NotFoundError``,
  408/429/5xx ``TransientError``, anything else ``RemoteError``;
- a Hub that cannot be reached (refused, reset, DNS, timeout, and the
  ``LocalEntryNotFoundError`` a download raises when that happens with nothing cached)
  is a ``TransientError`` whose one-line message names the endpoint and ``HF_ENDPOINT``;
- settings that cannot work (``HF_HUB_OFFLINE``, an ``HF_ENDPOINT`` that is no URL, a
  read-only ``HF_HOME``) are a ``ConfigError``;
- everything else the library raises is a ``RemoteError`` naming its class.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from types import ModuleType

from thinnka.errors import (
    AuthError,
    ConfigError,
    NotFoundError,
    PreflightError,
    RemoteError,
    ThinnkaError,
    TransientError,
    first_line,
)

__all__ = ["http_modules", "translate_hub_error", "unreachable_message"]

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def http_modules() -> tuple[ModuleType, ...]:
    """The HTTP libraries huggingface_hub may use here: httpx (1.x) and httpx2 (2.x)."""
    found = []
    for name in ("httpx", "httpx2"):
        try:
            found.append(__import__(name))
        except ImportError:
            continue
    return tuple(found)


def unreachable_message(endpoint: str, detail: str) -> str:
    return (
        f"The Hugging Face Hub at {endpoint} cannot be reached ({detail}); "
        "check the network, or set HF_ENDPOINT to a reachable Hub."
    )


def translate_hub_error(
    exc: BaseException, *, endpoint: str, repo_id: str | None, preflight: bool = True
) -> ThinnkaError:
    """The thinnka error for ``exc``, raised by huggingface_hub or the HTTP library below it."""
    if isinstance(exc, ThinnkaError):
        return exc
    from huggingface_hub import errors as hub

    what = f"{type(exc).__name__}: {first_line(exc)}"
    if isinstance(exc, hub.GatedRepoError):
        if preflight:
            return PreflightError(
                f"Model {repo_id} is gated and this token has no access. "
                f"Request access at {endpoint}/{repo_id} and run again.",
                reason="gated",
            )
        return AuthError(f"No access to gated repo {repo_id} on {endpoint}.", reason="gated")
    if isinstance(exc, hub.RepositoryNotFoundError):
        if preflight:
            return PreflightError(
                f"Model not found: {repo_id} (or it is private and this token cannot see it).",
                reason="model_not_found",
            )
        return NotFoundError(f"Repo {repo_id} not found on {endpoint}.")
    if isinstance(exc, hub.DisabledRepoError):
        if preflight:
            return PreflightError(f"Model {repo_id} is disabled on {endpoint}.")
        return NotFoundError(f"Repo {repo_id} is disabled on {endpoint}.")
    if isinstance(
        exc,
        hub.RevisionNotFoundError
        | hub.RemoteEntryNotFoundError
        | hub.BucketNotFoundError
        | hub.JobNotFoundError,
    ):
        return NotFoundError(f"Not found on the Hugging Face Hub at {endpoint} ({what}).")
    if isinstance(exc, hub.BadRequestError):
        return RemoteError(f"The Hugging Face Hub at {endpoint} refused the request ({what}).")
    if isinstance(exc, hub.HfHubHTTPError):
        return _by_status(_status(exc), endpoint, what)
    if isinstance(exc, hub.LocalTokenNotFoundError):
        return AuthError("No Hugging Face token: set HF_TOKEN.")
    if isinstance(exc, hub.OfflineModeIsEnabled):
        return ConfigError(f"HF_HUB_OFFLINE is set, but thinnka needs the Hub at {endpoint}.")
    if isinstance(exc, hub.HFValidationError):
        return ConfigError(f"Not a valid Hugging Face repo id: {first_line(exc)}")
    if isinstance(exc, hub.LocalEntryNotFoundError):
        # Raised by a download when the Hub could not be asked and nothing is cached, or
        # when the answer lacked the Hub's headers (the endpoint is some other server).
        cause = _network_cause(exc)
        if cause is not None:
            return TransientError(unreachable_message(endpoint, _short_name(cause)))
        return RemoteError(
            f"{endpoint} did not answer as a Hugging Face Hub ({what}); check HF_ENDPOINT."
        )
    translated = _http_library_error(exc, endpoint, what)
    if translated is not None:
        return translated
    if _is_network(exc):
        return TransientError(unreachable_message(endpoint, _short_name(exc)))
    if isinstance(exc, PermissionError):
        return ConfigError(f"The Hugging Face cache (HF_HOME) is not writable: {first_line(exc)}")
    if isinstance(exc, FileNotFoundError):  # a cached download vanished (cleaned meanwhile)
        return TransientError(f"A download from {endpoint} vanished from the cache ({what}).")
    return RemoteError(f"The Hugging Face Hub client failed talking to {endpoint} ({what}).")


def _http_library_error(exc: BaseException, endpoint: str, what: str) -> ThinnkaError | None:
    for module in http_modules():
        if isinstance(exc, module.TimeoutException):
            return TransientError(unreachable_message(endpoint, f"timed out: {_short_name(exc)}"))
        if isinstance(exc, module.UnsupportedProtocol | module.InvalidURL):
            return ConfigError(f"HF_ENDPOINT {endpoint!r} is not a usable http(s) URL ({what}).")
        if isinstance(exc, module.ProxyError):
            return TransientError(f"The proxy to the Hub at {endpoint} failed ({what}).")
        if isinstance(exc, module.TransportError):
            return TransientError(unreachable_message(endpoint, _short_name(exc)))
        if isinstance(exc, module.HTTPStatusError):
            return _by_status(exc.response.status_code, endpoint, what)
        if isinstance(exc, module.HTTPError | module.StreamError | module.CookieConflict):
            return RemoteError(f"The Hugging Face Hub at {endpoint} answered badly ({what}).")
    return None


def _by_status(status: int, endpoint: str, what: str) -> RemoteError:
    if status in (401, 403):
        return AuthError(f"The Hugging Face Hub at {endpoint} refused the token ({what}).")
    if status in (404, 410):
        return NotFoundError(f"Not found on the Hugging Face Hub at {endpoint} ({what}).")
    if status in _RETRY_STATUSES or status >= 500:
        return TransientError(f"The Hugging Face Hub at {endpoint} answered HTTP {status}.")
    return RemoteError(f"The Hugging Face Hub at {endpoint} answered HTTP {status} ({what}).")


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    return int(getattr(response, "status_code", 0) or 0)


def _is_network(exc: BaseException) -> bool:
    if any(isinstance(exc, module.TransportError) for module in http_modules()):
        return True
    return isinstance(exc, ConnectionError | TimeoutError | socket.gaierror | socket.herror)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _network_cause(exc: BaseException) -> BaseException | None:
    return next((link for link in _chain(exc) if _is_network(link)), None)


def _short_name(exc: BaseException) -> str:
    return type(exc).__name__
