"""Delivering the events outbox: at least once, in order per run and sink, in the background.

Events are already in the database (``thinnka.store.outbox``); a
``Deliverer`` thread posts each run's pending events to each sink, oldest
first, and records the result. A sink's next event waits until the one
before it is delivered or given up on, so receivers see every run's events
in order; each carries its ``event_id`` for de-duplication (a crash between
a post and its record sends that event again).

Answers: 2xx delivered; 429 and 5xx (and network errors) retried with
backoff, honouring ``retry_after`` (Discord's JSON), ``Retry-After`` and
``X-RateLimit-Reset-After``; any other status is a refusal, never retried,
and marks the event failed. After a few tries the sink is paused and tried
again later (by this process or the next command); an event that has used
up all its tries is marked failed, not dropped silently.

Every request has a total deadline (connect, headers and body together):
httpx's timeouts are per phase and per read, so a sink that trickles a
header line every few seconds would hold a request, and ``recover`` with
it, forever. A sink that misses the deadline is paused at once, and a
closing deliverer (a command's exit) never waits past its own budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from thinnka.errors import StoreError
from thinnka.events.sinks import Sink
from thinnka.store.outbox import DELIVERED, FAILED, PENDING, OutboxItem, OutboxTable

if TYPE_CHECKING:
    import httpx

__all__ = ["Deliverer", "DeliveryPolicy", "retry_after"]

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    tries_per_round: int = 4  # tries of one event before the sink is paused
    max_tries: int = 12  # tries of one event, over all rounds and processes, before failed
    pause_s: float = 30.0  # how long a sink that keeps failing is left alone
    max_wait_s: float = 60.0  # the longest rate-limit wait honoured in one go
    poll_s: float = 1.0  # how often the thread looks for new events without being woken
    timeout_s: float = 5.0  # one HTTP request, all of it: connect, headers and body


class _Retryable(Exception):
    def __init__(self, why: str, wait: float | None = None) -> None:
        super().__init__(why)
        self.why, self.wait = why, wait


class _Refused(Exception):
    pass


class _OutOfTime(Exception):
    pass


class _NoAnswer(Exception):
    """The sink did not answer within the request's total deadline: paused, not retried."""


def _non_negative_seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def retry_after(response: httpx.Response) -> float | None:
    """How long a 429 (or 503) asks to wait: Discord's JSON, then the headers."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and _non_negative_seconds(body.get("retry_after")) is not None:
        return _non_negative_seconds(body["retry_after"])
    for header in ("Retry-After", "X-RateLimit-Reset-After"):
        found = _non_negative_seconds(response.headers.get(header))
        if found is not None:
            return found
    return None


class Deliverer:
    """Posts pending outbox events of ``run_ids()`` to ``sinks``; see the module docstring."""

    def __init__(
        self,
        outbox: OutboxTable,
        sinks: Sequence[Sink],
        run_ids: Callable[[], Sequence[str]],
        *,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self.outbox, self.sinks, self.run_ids = outbox, list(sinks), run_ids
        self.policy = policy or DeliveryPolicy()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._close_deadline: float | None = None
        self._paused_until: dict[str, float] = {}
        self._not_before: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is None and self.sinks:
            self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is pending for at most ``timeout`` seconds; the rest stays pending."""
        if self._thread is None:
            return
        self._close_deadline = time.monotonic() + timeout
        self._closing.set()
        self._wake.set()
        # A request in flight is given up at the close deadline (``_request``): the
        # margin covers only the bookkeeping after it.
        self._thread.join(timeout=timeout + 1)
        self._thread = None

    def deliver(self, timeout: float) -> bool:
        """Deliver in this thread for at most ``timeout`` seconds; True when nothing is left."""
        self._close_deadline = time.monotonic() + timeout
        self._closing.set()
        try:
            return self._drain()
        finally:
            self._shut_client()

    def _loop(self) -> None:
        try:
            while not self._closing.is_set():
                self._wake.wait(self.policy.poll_s)
                self._wake.clear()
                if self._closing.is_set():
                    break
                self._round()
            self._drain()
        except StoreError as exc:  # the database is down: the runner says so, once
            logger.warning("outbox delivery stopped; events stay pending", error=exc.cause)
        except Exception:  # delivery must never take the run down with it
            logger.exception("outbox delivery crashed; events stay pending")
        finally:
            self._shut_client()

    def _drain(self) -> bool:
        """Rounds until nothing is pending or the close deadline comes."""
        while True:
            left = self._round()
            deadline = self._close_deadline or 0.0
            if not left or time.monotonic() >= deadline:
                return not left
            resume = min([*self._paused_until.values(), *self._not_before.values()], default=0.0)
            if resume >= deadline:
                return False
            time.sleep(max(0.05, min(resume - time.monotonic(), deadline - time.monotonic())))

    def _shut_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------ rounds
    def _round(self) -> bool:
        """One pass over every run and sink; True when something is still pending."""
        left = False
        for run_id in self.run_ids():
            for sink in self.sinks:
                if self._paused_until.get(sink.name, 0.0) > time.monotonic():
                    left = True
                    continue
                left |= self._deliver_sink(run_id, sink)
        return left

    def _deliver_sink(self, run_id: str, sink: Sink) -> bool:
        while items := self.outbox.pending(run_id, sink.name):
            for item in items:
                if not self._deliver_item(sink, item):
                    return True
        return False

    def _deliver_item(self, sink: Sink, item: OutboxItem) -> bool:
        """False when the sink should not be tried again for now."""
        tries = 0

        def count(_state: RetryCallState) -> None:
            nonlocal tries
            tries += 1

        retrying = Retrying(
            stop=stop_after_attempt(self.policy.tries_per_round),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before=count,
            reraise=True,
        )
        try:
            retrying(self._post, sink, item)
        except _Refused as refused:
            self.outbox.mark(item, sink.name, FAILED, attempts=item.attempts + tries,
                             error=str(refused))  # fmt: skip
            logger.warning("event refused by sink", sink=sink.name, event_id=item.event_id,
                           error=str(refused))  # fmt: skip
            return True
        except (_Retryable, _OutOfTime, _NoAnswer) as exc:
            why = exc.why if isinstance(exc, _Retryable) else str(exc) or "out of time"
            attempts = item.attempts + tries
            status = FAILED if attempts >= self.policy.max_tries else PENDING
            self.outbox.mark(item, sink.name, status, attempts=attempts, error=why)
            if status == FAILED:
                logger.warning("event undeliverable", sink=sink.name, event_id=item.event_id,
                               error=why, attempts=attempts)  # fmt: skip
                return True
            self._paused_until[sink.name] = time.monotonic() + self.policy.pause_s
            return False
        self.outbox.mark(item, sink.name, DELIVERED, attempts=item.attempts + tries)
        return True

    def _post(self, sink: Sink, item: OutboxItem) -> None:
        import httpx

        wait = self._not_before.get(sink.name, 0.0) - time.monotonic()
        if wait > 0:
            self._sleep(wait)
        try:
            response = self._request(sink.url, sink.body(item.payload))
        except httpx.HTTPError as exc:  # its text may carry the URL: keep only the kind
            raise _Retryable(type(exc).__name__) from None
        status = response.status_code
        if response.headers.get("X-RateLimit-Remaining") == "0":
            # Discord says the bucket is empty: the next post waits for its reset.
            reset = _non_negative_seconds(response.headers.get("X-RateLimit-Reset-After")) or 1.0
            self._not_before[sink.name] = time.monotonic() + min(reset, self.policy.max_wait_s)
        if status < 300:
            return
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}", retry_after(response))
        raise _Refused(f"HTTP {status}")

    def _request(self, url: str, body: dict[str, Any]) -> httpx.Response:
        """POST ``body`` within the request's total deadline, or the close deadline if sooner.

        httpx has no total timeout, so the request runs in a worker thread that is given
        up at the deadline; closing its client ends the connection, and the worker's
        next read fails (each read is bounded by ``timeout_s`` as well).
        """
        import httpx

        if self._client is None:
            self._client = httpx.Client(
                timeout=self.policy.timeout_s, headers={"User-Agent": "thinnka-outbox"}
            )
        client, own_deadline = self._client, time.monotonic() + self.policy.timeout_s
        outcome: list[httpx.Response | Exception] = []
        done = threading.Event()

        def attempt() -> None:
            try:
                outcome.append(client.post(url, json=body))
            except Exception as exc:  # handed to the caller below, or dropped if given up
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=attempt, name="outbox-post", daemon=True).start()
        while not done.is_set():
            deadline = own_deadline
            if self._closing.is_set() and self._close_deadline is not None:
                deadline = min(deadline, self._close_deadline)
            left = deadline - time.monotonic()
            if left <= 0:
                self._client = None
                client.close()
                if deadline < own_deadline:
                    raise _OutOfTime
                raise _NoAnswer(f"no answer within {self.policy.timeout_s:g} s")
            # In slices, so that a close() meanwhile shortens the wait to its deadline.
            done.wait(min(left, 0.2))
        result = outcome[0]
        if isinstance(result, Exception):
            raise result
        return result

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.wait is not None:
            return min(exc.wait, self.policy.max_wait_s)
        return float(min(8.0, 0.25 * 2 ** (state.attempt_number - 1)))

    def _sleep(self, seconds: float) -> None:
        """Sleep, unless a closing deadline comes first (the event then stays pending)."""
        closing = self._closing.is_set() and self._close_deadline is not None
        if closing and time.monotonic() + seconds > (self._close_deadline or 0.0):
            raise _OutOfTime
        time.sleep(seconds)
