"""The exception tree of thinnka.

Every error thinnka raises on purpose is a ``ThinnkaError``; the CLI maps the
branches to exit codes, and clients translate their libraries' errors into
these at the boundary, so nothing above the clients sees an httpx, paramiko or
huggingface_hub exception.

    ThinnkaError
      ConfigError          bad options, settings or recipe: exit 2, nothing created
      PreflightError       gated model, no write access, nothing fits: no pod exists yet
        RefusedChoice      the user's own choice cannot work (namespace, --max-price, ...): exit 2
      RemoteError          Runpod, the Hub or SSH answered badly (carries .retryable)
        AuthError          401/403: never retried
        CapacityError      no stock for the GPU asked for: try the next candidate
        NotFoundError      the remote object does not exist (any more)
        TransientError     429, 5xx, timeouts, dropped connections: retried with backoff
      StepTimeout          a handler ran past its deadline
      StateConflict        a guarded write matched no row: someone else moved the run
        LeaseHeld          another live process drives this run
      RunNotFound          no run with that id
      Cancelled            the run was cancelled while a step was working
      StoreError           the database cannot be read or written (disk full, locked, gone)
      PodHeld              cleanup must not terminate the pod yet: it holds an unpushed model
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from thinnka.reasons import Reason

__all__ = [
    "AuthError",
    "Cancelled",
    "CapacityError",
    "ConfigError",
    "LeaseHeld",
    "NotFoundError",
    "PodHeld",
    "PreflightError",
    "RefusedChoice",
    "RemoteError",
    "RunNotFound",
    "StateConflict",
    "StepTimeout",
    "StoreError",
    "ThinnkaError",
    "TransientError",
    "translated",
]


class ThinnkaError(Exception):
    """Base of every error thinnka raises on purpose.

    ``reason`` is a stable code (``thinnka.reasons.Reason``: ``gated``,
    ``no_capacity``, ...); a failed run stores its ``reason.failure``, so scripts
    can branch on it without parsing text. A string is accepted and must name a
    member (a typo fails loudly instead of storing an unknown code).
    """

    reason: Reason = Reason.internal

    def __init__(self, message: str, *, reason: Reason | str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = Reason(reason)

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(ThinnkaError):
    """The user's options, settings or recipe are invalid; fix them and run again."""

    reason = Reason.invalid_config


class PreflightError(ThinnkaError):
    """A check before spending money failed (gated model, read-only token, no GPU fits)."""

    reason = Reason.precheck


class RefusedChoice(PreflightError):
    """A plan-time refusal of what the user chose: a namespace the token cannot write, a
    ``--max-price`` below every GPU, a ``--gpu-type`` matching nothing that fits. A usage
    error (exit 2): changing the option fixes it, waiting does not."""


class RemoteError(ThinnkaError):
    """A remote service answered with an error."""

    reason = Reason.remote
    retryable: bool = False


class AuthError(RemoteError):
    """The credentials were refused; retrying cannot help."""

    reason = Reason.auth


class CapacityError(RemoteError):
    """The provider has no capacity for what was asked; another GPU type may work."""

    reason = Reason.no_capacity


class NotFoundError(RemoteError):
    """The remote object does not exist."""

    reason = Reason.not_found


class TransientError(RemoteError):
    """Rate limit, server error or network trouble; worth retrying with backoff."""

    reason = Reason.transient
    retryable = True


class StepTimeout(ThinnkaError):
    """A step ran past its deadline."""

    reason = Reason.timeout


class StateConflict(ThinnkaError):
    """A guarded state write matched no row: the run moved, or its lease is not ours."""

    reason = Reason.conflict


class LeaseHeld(StateConflict):
    """Another live process holds the run's lease."""

    reason = Reason.lease_held

    def __init__(self, message: str, *, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class RunNotFound(ThinnkaError):
    """No run with that id exists in this database."""

    reason = Reason.run_not_found


class Cancelled(ThinnkaError):
    """The run was cancelled (``thinnka cancel``, Ctrl-C, SIGTERM or SIGHUP) while a step
    worked."""

    reason = Reason.cancelled


class StoreError(ThinnkaError):
    """The database refused a read or a write: a full disk, a lock held past its timeout,
    a server that went away. Raised at the store's boundary in place of the driver's error;
    the runner then terminates the pods it knows of, since it can record nothing.
    ``cause`` is the driver's own words ("database or disk is full")."""

    reason = Reason.database

    def __init__(self, message: str, *, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause or message


class PodHeld(ThinnkaError):
    """A failed run's pod keeps a trained model its push could not deliver: cleanup leaves
    it until the push hold ends (``RemoteFacts.push_hold_until``), then terminates it."""

    reason = Reason.push_failed


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (at most 300 characters), for a message."""
    try:
        text = str(exc).strip()
    except Exception:  # some library errors cannot render without their full context
        text = ""
    return text.splitlines()[0][:300] if text else type(exc).__name__


class translated:
    """Raise ``translate(exc)`` for any exception of the block, chained to it (context
    manager): how a client turns its library's errors into these at its boundary. An
    exception ``translate`` returns as it is, and KeyboardInterrupt and friends, pass untouched.
    """

    def __init__(self, translate: Callable[[Exception], BaseException]) -> None:
        self._translate = translate

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        replacement = self._translate(exc)
        if replacement is not exc:
            raise replacement from exc
