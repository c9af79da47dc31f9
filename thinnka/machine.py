"""The run lifecycle, declared as data.

Pure: no I/O. The runner builds a strict ``transitions`` machine from
``TRANSITIONS`` for each run (seeded with the stored state), asks it which
trigger comes next, and fires the trigger only after the handler's work has
succeeded and been persisted with a guarded write.

    created → gated → estimated → provisioned → connected → installed
            → training → pushed → terminated
    any non-final state ──fail──▶ failed ──cleanup──▶ terminated

``terminated`` is the only final state and means "this run holds no pod any
more"; the run's ``outcome`` says whether it succeeded, failed or was
cancelled. ``failed`` means an error is recorded and a pod may still exist.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transitions import Machine

__all__ = [
    "FAIL_TRIGGER",
    "RESTART_TRIGGER",
    "TRANSITIONS",
    "Outcome",
    "RunState",
    "Transition",
    "build_machine",
    "mermaid_diagram",
    "next_transition",
]


class RunState(enum.StrEnum):
    """Where a run is. Values equal names, so the stored text reads the same either way."""

    # A row exists with the user's validated options; nothing remote was touched.
    created = "created"
    # The model is readable with this token and the token may write the target repo.
    gated = "gated"
    # The memory need is estimated and GPU candidates are chosen.
    estimated = "estimated"
    # A pod exists (its id is recorded); billing has started.
    provisioned = "provisioned"
    # The pod's public SSH port answered and its host key is recorded.
    connected = "connected"
    # The trainer is installed on the pod (or the image was checked).
    installed = "installed"
    # Training runs detached on the pod; its pid and log offsets are recorded.
    training = "training"
    # Training ended well and the Hub shows a commit made after it started.
    pushed = "pushed"
    # An error is recorded; a pod may still exist until cleanup.
    failed = "failed"
    # The run holds no pod any more. Final.
    terminated = "terminated"

    @classmethod
    def final_states(cls) -> frozenset[RunState]:
        return frozenset({cls.terminated})

    def is_final(self) -> bool:
        return self in self.final_states()

    def may_hold_pod(self) -> bool:
        """True where a pod may exist: from the create call on until terminated."""
        return self in _MAY_HOLD_POD


_MAY_HOLD_POD = frozenset(
    {
        RunState.estimated,  # the create call may have gone out before a crash
        RunState.provisioned,
        RunState.connected,
        RunState.installed,
        RunState.training,
        RunState.pushed,
        RunState.failed,
    }
)


class Outcome(enum.StrEnum):
    """How a terminated run ended; None while it is not terminated."""

    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


@dataclass(frozen=True)
class Transition:
    """One edge of the lifecycle, named by its trigger; one handler class serves it."""

    trigger: str
    source: RunState
    dest: RunState


_HAPPY_PATH = (
    Transition("check_gate", RunState.created, RunState.gated),
    Transition("estimate", RunState.gated, RunState.estimated),
    Transition("provision", RunState.estimated, RunState.provisioned),
    Transition("connect", RunState.provisioned, RunState.connected),
    Transition("install", RunState.connected, RunState.installed),
    Transition("train", RunState.installed, RunState.training),
    Transition("push", RunState.training, RunState.pushed),
    Transition("terminate", RunState.pushed, RunState.terminated),
)

FAIL_TRIGGER = "fail"
CLEANUP_TRIGGER = "cleanup"
# The pod was lost under the training: back to `estimated`, and a new pod resumes it from its
# last checkpoint (thinnka.handlers.restart). Fired by the runner, never a step's way forward.
RESTART_TRIGGER = "restart"

TRANSITIONS: tuple[Transition, ...] = (
    *_HAPPY_PATH,
    *(
        Transition(FAIL_TRIGGER, state, RunState.failed)
        for state in RunState
        if not state.is_final() and state is not RunState.failed
    ),
    Transition(CLEANUP_TRIGGER, RunState.failed, RunState.terminated),
    Transition(RESTART_TRIGGER, RunState.training, RunState.estimated),
)

# The triggers that do work through a handler; ``fail`` only records an error.
HANDLER_TRIGGERS: tuple[str, ...] = (*(t.trigger for t in _HAPPY_PATH), CLEANUP_TRIGGER)


def next_transition(state: RunState) -> Transition | None:
    """The forward edge out of ``state`` (the happy path, or cleanup after a failure)."""
    for transition in TRANSITIONS:
        if transition.source is state and transition.trigger not in (FAIL_TRIGGER, RESTART_TRIGGER):
            return transition
    return None


def build_machine(model: object, state: RunState) -> Machine:
    """A strict machine (no auto transitions) attached to ``model`` at ``state``."""
    from transitions import Machine

    return Machine(
        model=model,
        states=list(RunState),
        transitions=[
            {"trigger": t.trigger, "source": t.source, "dest": t.dest} for t in TRANSITIONS
        ],
        initial=state,
        auto_transitions=False,
        ignore_invalid_triggers=False,
        model_attribute="state",
    )


def mermaid_diagram() -> str:
    """The state diagram in Mermaid, generated from ``TRANSITIONS`` (the README embeds it)."""
    lines = ["stateDiagram-v2", f"    [*] --> {RunState.created.value}"]
    lines.extend(f"    {t.source.value} --> {t.dest.value}: {t.trigger}" for t in TRANSITIONS)
    lines.append(f"    {RunState.terminated.value} --> [*]")
    return "\n".join(lines)
