"""When a pod lost in training is not replaced: the rules ``plan_restart`` asks first."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from thinnka.handlers.restart import plan_restart
from thinnka.options import RunOptions
from thinnka.step import StepContext
from thinnka.store.restart_facts import RestartFacts


def _context(options: RunOptions, facts: RestartFacts | None = None) -> StepContext:
    # Only the run's options and its restart facts are read before these rules answer:
    # no pod, Hub or database is asked.
    run = SimpleNamespace(options=options, remote=SimpleNamespace(restarts=facts or RestartFacts()))
    return cast(StepContext, SimpleNamespace(run=run))


def test_no_restart_is_asked_with_max_restarts_0() -> None:
    assert plan_restart(_context(RunOptions(repo_id="o/m", max_restarts=0))) == ""


def test_a_cluster_run_is_not_restarted_on_a_new_cluster() -> None:
    options = RunOptions(repo_id="o/m", nodes=2, gpu_count=8)
    answer = plan_restart(_context(options))
    assert isinstance(answer, str) and "cluster run (--nodes) is not restarted" in answer
