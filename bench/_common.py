"""Shared bits of the benchmarks: timing helpers and the emulated world outside pytest."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def report(name: str, samples: list[float], goal: float | None = None) -> None:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    line = (
        f"{name}: median {statistics.median(samples):.3f} s, p95 {p95:.3f} s, "
        f"min {samples[0]:.3f} s, n={len(samples)}"
    )
    if goal is not None:
        line += f" (goal < {goal} s: {'met' if statistics.median(samples) < goal else 'MISSED'})"
    print(line, flush=True)
