"""The transition table is complete, strict, and the README shows it as it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from transitions import MachineError

from thinnka.handlers import default_handlers
from thinnka.machine import (
    FAIL_TRIGGER,
    HANDLER_TRIGGERS,
    RESTART_TRIGGER,
    TRANSITIONS,
    RunState,
    build_machine,
    mermaid_diagram,
    next_transition,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_transition_has_a_handler() -> None:
    handlers = default_handlers()
    # fail and restart record what the runner decided; no handler does their work.
    triggers = {t.trigger for t in TRANSITIONS if t.trigger not in (FAIL_TRIGGER, RESTART_TRIGGER)}
    assert triggers == set(HANDLER_TRIGGERS)
    assert triggers <= set(handlers), triggers - set(handlers)
    for trigger, handler in handlers.items():
        assert handler.trigger == trigger


def test_restart_goes_back_from_training_and_is_never_the_way_forward() -> None:
    restart = [t for t in TRANSITIONS if t.trigger == RESTART_TRIGGER]
    assert [(t.source, t.dest) for t in restart] == [(RunState.training, RunState.estimated)]
    step = next_transition(RunState.training)
    assert step is not None and step.trigger == "push"


def test_every_non_final_state_reaches_terminated() -> None:
    edges: dict[RunState, set[RunState]] = {}
    for t in TRANSITIONS:
        edges.setdefault(t.source, set()).add(t.dest)
    for state in RunState:
        if state.is_final():
            continue
        seen, frontier = {state}, [state]
        while frontier:
            for dest in edges.get(frontier.pop(), ()):
                if dest not in seen:
                    seen.add(dest)
                    frontier.append(dest)
        assert RunState.terminated in seen, f"{state} cannot reach terminated"


def test_terminated_is_the_only_final_state_and_has_no_exits() -> None:
    assert RunState.final_states() == {RunState.terminated}
    assert not [t for t in TRANSITIONS if t.source is RunState.terminated]
    assert next_transition(RunState.terminated) is None


def test_every_non_final_state_can_fail_except_failed() -> None:
    failing = {t.source for t in TRANSITIONS if t.trigger == FAIL_TRIGGER}
    assert failing == set(RunState) - {RunState.failed, RunState.terminated}


class _Model:
    state: RunState


def test_machine_is_strict() -> None:
    model = _Model()
    build_machine(model, RunState.created)
    assert not hasattr(model, "to_terminated"), "auto transitions must be off"
    with pytest.raises(MachineError):
        model.push()  # type: ignore[attr-defined]
    model.check_gate()  # type: ignore[attr-defined]
    assert model.state is RunState.gated


def test_readme_state_diagram_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```mermaid\n(stateDiagram-v2.*?)\n```", text, re.S)
    assert match, "README.md has no mermaid state diagram"
    assert match.group(1) == mermaid_diagram(), (
        "README's state diagram is stale: paste thinnka.machine.mermaid_diagram() into it"
    )
