"""Seeded random transport faults, shared by the Runpod and Hub emulators.

Queued faults (``inject_faults``, ``inject_fault``) hit requests a test names. These hit a
fraction of *all* API requests during whole runs, as a flaky network or an overloaded API
would: a 429 with ``Retry-After``, a 500, or a connection dropped without an answer. A 500
or a drop may come after the request took effect ("it was done, the answer was lost"),
which is what makes a non-idempotent retry create a second pod.

Deterministic from the seed: the fate of the n-th request with a given method, path and
detail (GraphQL's query text) is a hash of (seed, request, n). Ids in paths are folded
(``/v2/pods/{id}``), so "the second ``POST /v2/pods`` of a run" fails or not whatever the
pod ids; which request comes n-th still depends on the client's timing (polls).
The emulators' own ``/_control`` endpoints are never faulted.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import TypedDict

__all__ = ["KINDS", "FaultSettings", "Hit", "RandomFaults", "injected"]

KINDS = ("429", "500", "drop")
_ID = re.compile(r"(?<=/)[0-9a-z]{12,}(?=/|$)")  # pod ids (14), commit shas (40)


class FaultSettings(TypedDict, total=False):
    """``RandomFaults``' keywords besides the required ``rate`` and ``seed``: what the
    emulators' ``random_faults(rate=, seed=, **settings)`` passes on."""

    kinds: tuple[str, ...] | list[str]
    retry_after: float
    lost_answers: float
    agent: str | None


@dataclass(frozen=True)
class Hit:
    """One request's fault: ``kind`` from ``KINDS``; ``after``: the request was carried out
    first and only its answer is replaced (500) or lost (drop); never for a 429."""

    kind: str
    after: bool


class RandomFaults:
    """Which requests fail; counts what it injected (``injected()``)."""

    def __init__(
        self,
        *,
        rate: float,
        seed: int,
        kinds: tuple[str, ...] | list[str] = KINDS,
        retry_after: float = 0.2,
        lost_answers: float = 0.5,
        agent: str | None = None,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], not {rate!r}")
        if not kinds or set(kinds) - set(KINDS):
            raise ValueError(f"kinds must be some of {KINDS}, not {kinds!r}")
        self.rate, self.seed, self.kinds = rate, int(seed), tuple(kinds)
        self.retry_after = retry_after
        self.lost_answers = lost_answers  # the share of 500s and drops that come after
        self.agent = agent  # only requests whose User-Agent contains it (None: all)
        self._seen: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def draw(self, method: str, path: str, *, detail: str = "", user_agent: str = "") -> Hit | None:
        """The fault for this request, or None; counts every fault it hands out."""
        if self.agent is not None and self.agent not in user_agent:
            return None
        key = f"{method} {_ID.sub('{id}', path)} {detail}"
        with self._lock:
            self._seen[key] += 1
            digest = hashlib.sha256(f"{self.seed}\0{key}\0{self._seen[key]}".encode()).digest()
            if int.from_bytes(digest[:8], "big") / 2**64 >= self.rate:
                return None
            kind = self.kinds[digest[8] % len(self.kinds)]
            after = kind != "429" and digest[9] / 256 < self.lost_answers
            self._injected[kind] += 1
            if after:
                self._injected["after"] += 1
        return Hit(kind, after)

    def injected(self) -> dict[str, int]:
        """Faults handed out so far per kind, plus ``after`` (lost answers) and ``total``."""
        with self._lock:
            counts = {kind: self._injected[kind] for kind in KINDS}
            counts["after"] = self._injected["after"]
        counts["total"] = sum(counts[kind] for kind in KINDS)
        return counts


def injected(faults: RandomFaults | None) -> dict[str, int]:
    """What ``faults`` handed out, per kind (and ``after``, ``total``); zeros when off."""
    if faults is None:
        return {kind: 0 for kind in (*KINDS, "after", "total")}
    return faults.injected()
