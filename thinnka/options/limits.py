"""A run's time and money bounds: ``--max-hours``, ``--max-cost`` and the derived default.

Pure (no I/O). The orchestrator and the pod's watchdog enforce the same
deadline: the earlier of "pod start + max hours" and "the moment price x uptime
would reach --max-cost" (less a small margin, so the run stops *before* it).
The watchdog script repeats the arithmetic in plain Python (it cannot import
thinnka); ``tests/pod/test_watchdog.py`` checks that both agree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from thinnka.options import RunOptions

__all__ = [
    "COST_MARGIN_S",
    "ORPHAN_GRACE_FACTOR",
    "PUSH_HOLD_FACTOR",
    "RunLimit",
    "default_max_hours",
    "limits_json",
    "max_hours_for",
    "orphan_grace_s",
    "pessimistic_step_s",
    "push_hold_s",
    "push_pause_s",
    "run_limit",
]

COST_MARGIN_S = 60.0  # same as the watchdog's: stop this long before --max-cost is reached
# Pessimistic seconds per optimizer step (a GRPO step generates, an SFT step does not),
# plus a fixed allowance for setup, model download and the final push.
_STEP_S = {"grpo": 60.0, "sft": 20.0}
_ALLOWANCE_H = 1.0
_FLOOR_H, _CEILING_H = 2.0, 72.0
_NO_STEP_COUNT_H = 24.0  # --max-steps -1 (epochs): no step count to derive from
# Between jobs (setup ended, training not started) a live orchestrator starts the next job
# within seconds, and touches the watchdog's heartbeat as it does. A pod idle there for
# this many grace periods (10 min by default) has nobody left to start it, so its watchdog
# ends it: long enough for a laptop's short sleep or a `resume` waiting out another host's
# lease (a minute), far shorter than --max-hours, which bounded it before.
ORPHAN_GRACE_FACTOR = 5.0
# A trained model whose final push failed for good stays on its pod this many grace periods
# (1 h by default) so it can be pushed by hand, instead of going with the pod: long enough
# to notice the failure event and run one command, short enough not to bill an idle GPU for
# long (the run's deadline bounds it too). Derived from --watchdog-grace, not an option of
# its own, so that no user has to know about it.
PUSH_HOLD_FACTOR = 30.0
# The pod's own retries of that push (recipes/scripts/thinnka_push.py, 5 attempts) pause
# grace/24 first, then twice as long each time: 5 + 10 + 20 + 40 s by default, about two
# minutes of Hub outage ridden out.
_PUSH_PAUSE_FRACTION = 1 / 24


def default_max_hours(options: RunOptions) -> float:
    """The bound used when --max-hours is not given: steps x a pessimistic step time."""
    if options.max_steps is None or options.max_steps < 0:
        return _NO_STEP_COUNT_H
    hours = _ALLOWANCE_H + options.max_steps * _STEP_S[options.mode] / 3600.0
    return round(min(max(hours, _FLOOR_H), _CEILING_H), 2)


def pessimistic_step_s(options: RunOptions) -> float:
    """The step time the derived bounds assume (a GRPO step generates, an SFT step not)."""
    return _STEP_S[options.mode]


def orphan_grace_s(options: RunOptions) -> float:
    """Seconds the pod's watchdog lets a pod idle between jobs with nobody following."""
    return ORPHAN_GRACE_FACTOR * options.watchdog_grace


def push_hold_s(options: RunOptions) -> float:
    """Seconds a pod whose final push failed is kept, with the model on it, for a hand push."""
    return PUSH_HOLD_FACTOR * options.watchdog_grace


def push_pause_s(options: RunOptions) -> float:
    """The pod's first pause between attempts of its own final push."""
    return options.watchdog_grace * _PUSH_PAUSE_FRACTION


def max_hours_for(options: RunOptions) -> tuple[float, str]:
    """(hours, where they come from): the option, else the derived default."""
    if options.max_hours is not None:
        return options.max_hours, "--max-hours"
    return default_max_hours(options), "derived from the plan (steps x pessimistic step time)"


@dataclass(frozen=True)
class RunLimit:
    """When the run must be stopped, and the failure reason it then carries."""

    at: dt.datetime
    reason: str  # max_duration or max_cost

    def passed(self, now: dt.datetime) -> bool:
        return now >= self.at


def run_limit(
    options: RunOptions, pod_started_at: dt.datetime | None, cost_per_hr: float | None
) -> RunLimit | None:
    """The earliest bound of a run whose pod started at ``pod_started_at``."""
    if pod_started_at is None:
        return None
    hours, _ = max_hours_for(options)
    limits = [RunLimit(pod_started_at + dt.timedelta(hours=hours), "max_duration")]
    if options.max_cost is not None and cost_per_hr:
        seconds = options.max_cost / cost_per_hr * 3600.0
        seconds -= min(COST_MARGIN_S, seconds * 0.05)
        limits.append(RunLimit(pod_started_at + dt.timedelta(seconds=seconds), "max_cost"))
    return min(limits, key=lambda limit: limit.at)


def limits_json(options: RunOptions) -> dict[str, object]:
    """What ``thinnka plan`` shows about the run's bounds."""
    hours, source = max_hours_for(options)
    return {
        "max_hours": hours,
        "max_hours_source": source,
        "max_cost": options.max_cost,
        "watchdog_grace_s": options.watchdog_grace,
        "watchdog_orphan_grace_s": orphan_grace_s(options),
    }
