"""REST v2 knobs of the fake Runpod: capacity per cloud, balance, rate limits, request log.

Why apart from `World`: these exist only on the v2 surface (GraphQL has no rate-limit headers,
no 402, no per-cloud create), and keeping them in one record lets `World.reset` restore them
with one assignment. The rate limiter plays Runpod's (docs/runpod.md, "REST v2: rate limits"):
fixed windows per API key, `RateLimit`/`RateLimit-Policy` headers on authenticated answers, a
429 with an integer `Retry-After` once a window is spent.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

__all__ = ["DEFAULT_POLICY", "RateLimiter", "RequestRecord", "V2Knobs"]

# Generous enough that no test or e2e run meets it unless it asks to (set_rate_limit).
DEFAULT_POLICY: tuple[tuple[str, int, float], ...] = (
    ("minute", 2000, 60.0),
    ("hour", 50000, 3600.0),
)


@dataclass
class V2Knobs:
    """What a test can script on the v2 surface; `World.reset` makes a fresh one."""

    closed: set[tuple[str, str]] = field(default_factory=set)  # (gpu id, cloud) with no capacity
    balance_exhausted: bool = False  # every create answers 402
    forbidden_pools: set[str] = field(default_factory=set)  # gpu ids whose create answers 403
    community_public_ip: bool = True  # False: COMMUNITY pods never get a public port
    running_at_once: bool = False  # status RUNNING right after create while runtime is null
    billing_delay: float = 0.0  # seconds after create before a pod's spend shows in billing
    exited_cost_zero: bool = True  # `cost` reads 0.0 while EXITED (the spec's words)


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the emulator saw it (controls are not logged)."""

    method: str
    path: str
    surface: str  # "graphql", "v2" or "other"
    key: str  # "account", "read_only", "none" or "unknown"
    status: int
    at: float = 0.0  # wall-clock time the answer was decided (time.time())


class RateLimiter:
    """Fixed windows per key; `take` counts one request and says whether it may proceed."""

    def __init__(self, policy: tuple[tuple[str, int, float], ...] = DEFAULT_POLICY) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def take(self, key: str, now: float) -> tuple[bool, dict[str, str]]:
        """(allowed, headers); a refused request is not counted."""
        with self._lock:
            states = []
            for name, quota, window in self.policy:
                start, used = self._windows.get((key, name), (now, 0))
                if now - start >= window:
                    start, used = now, 0
                states.append((name, quota, window, start, used))
            allowed = all(used < quota for _, quota, _, _, used in states)
            parts, resets = [], []
            for name, quota, window, start, used in states:
                if allowed:
                    used += 1
                self._windows[(key, name)] = (start, used)
                reset = max(0, math.ceil(start + window - now))
                parts.append(f'"{name}";r={max(0, quota - used)};t={reset}')
                if used >= quota:
                    resets.append(reset)
            headers = {
                "RateLimit": ", ".join(parts),
                "RateLimit-Policy": ", ".join(
                    f'"{name}";q={quota};w={int(window)}' for name, quota, window in self.policy
                ),
            }
            if not allowed:
                headers["Retry-After"] = str(max(1, max(resets)))
            return allowed, headers
