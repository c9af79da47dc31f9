"""What a transition handler is, and what it gets to work with.

A handler does the work of one transition and returns what to record. It
never writes the run's state: the runner fires the trigger and persists the
result with a guarded write. Handlers must be idempotent — the process may
die at any line, and the next ``resume`` runs the same handler again from the
facts recorded so far — and must finish before ``ctx.deadline``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from thinnka.planning.facts import GateFacts
from thinnka.pod.paths import remote_paths
from thinnka.step import Output, StepContext, StepResult

if TYPE_CHECKING:
    from thinnka.options import RunOptions
    from thinnka.planning.facts import RemotePaths
    from thinnka.rendering import Rendered
    from thinnka.store import RunRecord

__all__ = ["Handler", "Output", "StepContext", "StepResult", "rendered_for_run"]


class Handler(Protocol):
    """One transition's work. ``trigger`` names the transition it serves."""

    @property
    def trigger(self) -> str:
        """The trigger of the transition it serves (a class attribute in most handlers)."""
        ...

    def timeout_s(self, run: RunRecord) -> float:
        """How long the step may take for this run."""
        ...

    def run(self, ctx: StepContext) -> StepResult: ...


def rendered_for_run(ctx: StepContext) -> tuple[RemotePaths, Rendered]:
    """(paths, rendered) of this run; rendering is pure, so every step re-derives it
    from the recorded facts (install, train and push of one run get the same result,
    rendered once in this process: see ``_render``)."""
    gate_json: dict[str, Any] = (ctx.run.plan or {})["gate"]
    gate = GateFacts.from_json(gate_json)
    paths = remote_paths(ctx.settings, ctx.run.id, ctx.run.options, gate)
    return paths, _render(ctx.run.options, json.dumps(gate_json, sort_keys=True), paths)


@lru_cache(maxsize=8)
def _render(options: RunOptions, gate_json: str, paths: RemotePaths) -> Rendered:
    """``render`` for exactly these inputs (all it reads). A refusal is not kept: lru_cache
    keeps only results, so the next step raises it again."""
    from thinnka.rendering import render

    return render(options, GateFacts.from_json(json.loads(gate_json)).model_context(), paths)
