"""REST v2 error answers (RFC 9457 problem+json) mapped to thinnka's error tree.

v2 has no machine-readable error code (only ``title``, ``status`` and ``detail`` texts), so
the HTTP status decides, with the operation as context: a 400 on create is "no capacity for
this GPU/cloud" (or a broken cross-field rule, which the next candidate would show too), while
a 400 elsewhere is a request thinnka should not have sent. ``detail`` and ``errors[]`` are
quoted so the user sees what Runpod said; the key is never part of any of it.
"""

from __future__ import annotations

import json
from typing import Literal

from thinnka.errors import (
    AuthError,
    CapacityError,
    NotFoundError,
    RemoteError,
    TransientError,
)
from thinnka.reasons import Reason

__all__ = ["InsufficientFunds", "Operation", "RateLimited", "error_for"]

Operation = Literal["create", "read", "delete", "catalog", "billing"]

_FUNDS_URL = "https://www.runpod.io/console/user/billing"


class RateLimited(TransientError):
    """HTTP 429: retried after ``Retry-After`` seconds (or with backoff when absent)."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InsufficientFunds(RemoteError):
    """HTTP 402: the account's balance cannot start a pod; no candidate can help."""

    reason = Reason.auth  # the account, not the request, must change


def _problem(text: str) -> tuple[str, list[str]]:
    """``detail`` (or ``title``) and the ``errors`` list of a problem body, tolerantly."""
    try:
        body = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300], []
    if not isinstance(body, dict):
        return str(body)[:300], []
    detail = str(body.get("detail") or body.get("title") or "no detail")
    errors = body.get("errors")
    return detail, [str(e) for e in errors] if isinstance(errors, list) else []


def error_for(
    status: int, text: str, op: Operation, *, retry_after: float | None = None
) -> RemoteError:
    """The thinnka error for a non-success v2 answer."""
    detail, errors = _problem(text)
    said = f"{detail} ({'; '.join(errors)})" if errors else detail
    if status == 400 and op == "create":
        return CapacityError(f"Runpod: {said}")
    if status == 401:
        return AuthError(f"Runpod refused the API key (HTTP 401: {said}); check RUNPOD_API_KEY.")
    if status == 402:
        return InsufficientFunds(
            f"Runpod: the account balance is too low to start a pod (HTTP 402). "
            f"Add funds at {_FUNDS_URL}, then run again."
        )
    if status == 403:
        if op == "create" and "pool" in detail.lower():
            # The key may not use this GPU pool: the next candidate may be allowed.
            return CapacityError(f"Runpod: {said} (HTTP 403)")
        return AuthError(
            f"Runpod: the API key lacks permission for this (HTTP 403: {said}); "
            "use a key with read/write access to pods."
        )
    if status == 404:
        return NotFoundError(f"Runpod: {said} (HTTP 404)")
    if status == 409:
        return RemoteError(f"Runpod: the pod cannot do that now (HTTP 409: {said})")
    if status == 422:
        fields = "; ".join(errors) or detail
        return RemoteError(
            f"Runpod rejected a request thinnka built (HTTP 422: {fields}). This is a bug in "
            "thinnka; please report it with this message.",
            reason="internal",
        )
    if status == 429:
        wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        return RateLimited(f"Runpod rate limit reached (HTTP 429{wait}).", retry_after=retry_after)
    if status >= 500:
        return TransientError(f"Runpod API answered HTTP {status}: {said}")
    return RemoteError(f"Runpod API answered HTTP {status}: {said}")
