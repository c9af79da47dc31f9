"""httpx's exceptions, translated once for both of Runpod's API surfaces (REST v2, GraphQL).

Whatever httpx raises while sending a request or reading its answer becomes a thinnka
error here, so neither client lets an httpx exception out, and both say the same thing
for the same fault.
"""

from __future__ import annotations

import httpx

from thinnka.errors import ConfigError, RemoteError, ThinnkaError, TransientError

__all__ = ["TRANSPORT_ERRORS", "classify_transport_error"]

# Every exception httpx raises for a request: HTTPError covers the transport and decoding;
# InvalidURL and CookieConflict stand outside it.
TRANSPORT_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict)


def classify_transport_error(exc: Exception) -> ThinnkaError:
    """Turn an exception of httpx (sending the request, reading the answer) into thinnka's."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"Runpod API timed out ({name}).")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ConfigError(f"RUNPOD_API_BASE_URL is not a usable http(s) URL ({name}).")
    if isinstance(exc, httpx.TransportError):
        return TransientError(f"Runpod API unreachable ({name}).")
    if isinstance(exc, httpx.DecodingError):
        return TransientError(f"Runpod API answered with a body that cannot be decoded ({name}).")
    return RemoteError(f"Runpod API request failed ({name}).")


def header_seconds(value: str | None) -> float | None:
    """A ``Retry-After``-style header as seconds (never negative); None when absent or odd."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
