"""Faults at the end of a run, end to end: Runpod failing the terminate of a pushed run.

The real ``thinnka`` program against the emulated world; the training is the stand-in
(tests/world/standin_trainer.py), since these cases are about what happens after it.
"""

from __future__ import annotations

import pytest

from tests.plugins.thinnka_world import World
from tests.world.standin_trainer import (  # noqa: F401 - fixtures
    standin_run,
    standin_venv_fixture,
    standin_world_fixture,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# Only the orchestrator's REST terminate: the pod's watchdog falls back to GraphQL.
_DELETE = "DELETE /v2/pods/"


def test_runpod_5xx_on_terminate_is_retried_and_the_pushed_run_succeeds(
    standin_world: World,
) -> None:
    """More 503s than the client's own quick attempts: the terminate step tries again
    with backoff, and the run ends terminated and succeeded with its pod gone."""
    world = standin_world
    world.runpod.inject_faults(status=503, count=7, match=_DELETE)
    done = world.thinnka(*standin_run(world, "--watchdog-grace", "60"), timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.split()[1]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded"), shown["error"]
    assert "terminate_retry" in done.stderr or "retrying in" in done.stderr
    assert world.runpod.pods() == []


def test_a_pod_runpod_will_not_terminate_keeps_a_pushed_run_succeeded(
    standin_world: World,
) -> None:
    """Runpod answers every terminate with 503: the pushed model is no failure. The run
    stays ``pushed`` and ``succeeded`` (exit 0), an event hands the pod to `recover` and
    the watchdog, and `recover` terminates it once Runpod answers again."""
    world = standin_world
    world.runpod.inject_faults(status=503, count=10_000, match=_DELETE)
    done = world.thinnka(*standin_run(world, "--watchdog-grace", "60"), timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.split()[1]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("pushed", "succeeded"), shown["error"]
    assert shown["error"] is None
    deferred = [e for e in shown["events"] if e["kind"] == "terminate_deferred"]
    assert len(deferred) == 1, [e["kind"] for e in shown["events"]]
    assert "thinnka recover" in deferred[0]["message"]
    assert "watchdog" in deferred[0]["message"]
    assert world.runpod.pod(shown["pod_id"]) is not None  # still there: nobody deleted it
    world.runpod.clear_faults()
    recovered = world.thinnka("recover", "--json", timeout=120)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded"), shown["error"]
    assert world.runpod.pods() == []
