"""Runpod REST v2's ``RateLimit`` headers, parsed, and a pacer that honours them.

The headers follow the IETF draft (docs/runpod.md): ``RateLimit: "minute";r=12;t=40, ...``
gives, per window, the requests left (``r``) and the seconds until the window resets (``t``);
``RateLimit-Policy: "minute";q=60;w=60`` the quota. The numbers differ between accounts and
over time (a live account saw 176 per minute), so they are read from every answer, never
hard-coded. The pacer spaces requests out once a window runs low, so a long loop such as
``reap`` over 1,000 pods stays under the quota instead of running into 429s.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["RatePacer", "RateWindow", "parse_rate_limit"]

_ITEM = re.compile(r'"(?P<name>[^"]+)"(?P<params>(?:\s*;\s*[a-z]+=[0-9.]+)*)')
_PARAM = re.compile(r"([a-z]+)=([0-9.]+)")


@dataclass(frozen=True)
class RateWindow:
    name: str
    remaining: int
    reset_s: float


def parse_rate_limit(header: str | None) -> list[RateWindow]:
    """The windows of a ``RateLimit`` header; malformed items are skipped, not fatal."""
    windows = []
    for match in _ITEM.finditer(header or ""):
        params = dict(_PARAM.findall(match.group("params")))
        if "r" in params and "t" in params:
            windows.append(
                RateWindow(match.group("name"), int(float(params["r"])), float(params["t"]))
            )
    return windows


class RatePacer:
    """When the next request may go, from the last answer's headers (thread-safe).

    A window with requests left but few of them (at most ``reserve``) is spread evenly over
    the time until it resets; an exhausted window waits for its reset. A wait longer than
    ``max_wait_s`` is not slept: ``wait`` returns it so the caller can fail clearly.
    """

    def __init__(
        self,
        *,
        reserve: int = 5,
        max_wait_s: float = 90.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._reserve = reserve
        self._max_wait = max_wait_s
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._not_before = 0.0
        self.waited_s = 0.0  # total paced time, for benchmarks

    def observe(self, headers: Mapping[str, str]) -> None:
        spacing = 0.0
        for window in parse_rate_limit(headers.get("RateLimit")):
            if window.remaining <= 0:
                spacing = max(spacing, window.reset_s)
            elif window.remaining <= self._reserve:
                spacing = max(spacing, window.reset_s / (window.remaining + 1))
        self.defer(spacing)

    def defer(self, seconds: float) -> None:
        """No request before ``seconds`` from now (e.g. a 429's ``Retry-After``)."""
        if seconds <= 0:
            return
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def wait(self) -> float:
        """Sleep until a request may go; returns a too-long wait (unslept) or 0."""
        with self._lock:
            delay = self._not_before - self._clock()
        if delay <= 0:
            return 0.0
        if delay > self._max_wait:
            return delay
        self._sleep(delay)
        self.waited_s += delay
        return 0.0
