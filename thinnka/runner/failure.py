"""What a failing step records, and the crash matrix's kill points."""

from __future__ import annotations

import os
import signal

import structlog

from thinnka.errors import StepTimeout, ThinnkaError
from thinnka.machine import next_transition
from thinnka.reasons import STEP_TIMEOUTS, Reason
from thinnka.store import RunRecord

__all__ = ["crash_point", "failure_reason"]

logger = structlog.get_logger(__name__)


def crash_point(trigger: str, phase: str) -> None:
    """Test hook for the crash matrix: ``THINNKA_CRASH_AT=<trigger>:<phase>`` SIGKILLs
    this process at that point (phases: before, after_call, after_write)."""
    if os.environ.get("THINNKA_CRASH_AT") == f"{trigger}:{phase}":
        os.kill(os.getpid(), signal.SIGKILL)


def failure_reason(run: RunRecord, error: ThinnkaError) -> Reason:
    """The failure code a run stores for ``error`` raised in the step out of its state.

    A deadline says what was being waited for only together with the step
    (no SSH, no trainer, --max-hours); other errors know their own code.
    """
    if isinstance(error, StepTimeout):
        step = next_transition(run.state)
        if step is not None and step.trigger in STEP_TIMEOUTS:
            return STEP_TIMEOUTS[step.trigger]
    try:
        # Reason() again: a subclass may still set a plain string as its class default.
        return Reason(error.reason).failure
    except ValueError:  # the failure path must not fail: record it, cleanup follows
        logger.warning("unknown reason code", reason=str(error.reason))
        return Reason.internal
