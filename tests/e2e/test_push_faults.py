"""Faults in the final push, end to end: the Hub failing the commit of the trained model.

transformers' final push is one ``create_commit``, which huggingface_hub does not retry on a
5xx: the trainer exits 1 with its model saved in ``output_dir``. The pod's ``train.sh`` then
pushes the folder itself (``recipes/scripts/thinnka_push.py``, bounded retries with backoff),
and when that fails for good the run is ``push_failed`` with its pod, and the model on it,
kept for the push hold (30 x ``--watchdog-grace``) and a command to push by hand.

The real ``thinnka`` program against the emulated world; the training is the stand-in
(tests/world/standin_trainer.py), which saves and pushes as transformers does. Only commits
to the target repo fail (``POST /api/models/<repo>/commit/``): the orchestrator only reads.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time

import pytest

from tests.plugins.thinnka_world import World
from tests.world.standin_trainer import (  # noqa: F401 - fixtures
    standin_run,
    standin_venv_fixture,
    standin_world_fixture,
    tell_standin,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

GRACE = 2  # seconds: the pod's push retries pause grace/24, the push hold is 30 x grace
REPO = "push-faults-model"


def _commits_fail(world: World, times: int) -> str:
    repo = f"{world.hub.user}/{REPO}"
    world.hub.inject_fault(f"/api/models/{repo}/commit/", 500, method="POST", times=times)
    return repo


def test_a_hub_5xx_on_the_final_push_is_retried_on_the_pod_and_the_run_succeeds(
    standin_world: World,
) -> None:
    """The trainer's final commit and thinnka's first retry answer 500: the pod pushes the
    saved model on its second attempt, records the final push, and the run succeeds."""
    world = standin_world
    repo = _commits_fail(world, times=2)
    argv = standin_run(world, "--hub-model-id", repo, "--watchdog-grace", str(GRACE))
    done = world.thinnka(*argv, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.split()[1]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded"), shown["error"]
    assert "failed (attempt 1 of 5)" in done.stdout + done.stderr
    titles = [c.summary for c in world.hub.commits(repo)]
    assert "End of training" in titles, titles
    assert titles[-1] == f"thinnka: final push of run {run_id}", titles
    assert world.runpod.pods() == []


def test_a_final_push_that_keeps_failing_keeps_the_pod_for_the_hold_then_ends_it(
    standin_world: World,
) -> None:
    """Every commit answers 500: the run fails as ``push_failed`` and says how long the pod
    is kept and the command that pushes by hand (no token in it); the pod is still up after
    the run's process exited and through a `recover`, its watchdog ends it at the hold's end,
    `recover` closes the run, and the command pushes the model once the Hub answers."""
    world = standin_world
    repo = _commits_fail(world, times=10_000)
    argv = standin_run(world, "--hub-model-id", repo, "--watchdog-grace", str(GRACE))
    done = world.thinnka(*argv, timeout=240)
    assert done.returncode == 1, done.stderr[-3000:]
    run_id = done.stdout.split()[1]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("failed", "failed"), shown
    assert shown["error"]["reason"] == "push_failed", shown["error"]
    message = shown["error"]["message"]
    assert f"kept with the model for {30 * GRACE} s" in message, message
    command = re.search(r"ssh -p \d+ \S+@\S+ (.+)$", message)
    assert command is not None, message
    assert "thinnka_push.py" in command[1]
    kinds = [e["kind"] for e in shown["events"]]
    assert "pod_kept" in kinds and "cleanup_error" not in kinds, kinds
    for secret in world.secrets:
        assert secret not in done.stdout + done.stderr + message
    pod = world.runpod.pod(shown["pod_id"])
    assert pod is not None and pod.desired_status == "RUNNING"  # the model is still on it

    # Held, not forgotten: a `recover` during the hold leaves the pod; at the hold's end the
    # pod's watchdog ends it, and `recover` then closes the run.
    recovered = world.thinnka("recover", "--json", timeout=120)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert world.runpod.pod(shown["pod_id"]) is not None, recovered.stdout
    end = time.monotonic() + 30 * GRACE + 60
    while world.runpod.pod(shown["pod_id"]) is not None and time.monotonic() < end:
        time.sleep(1)
    assert world.runpod.pod(shown["pod_id"]) is None, "the pod outlived its push hold"
    run_dir = world.remote_root / "thinnka" / run_id
    verdict = json.loads((run_dir / "watchdog.verdict").read_text())
    assert verdict["reason"] == "push_hold_ended", verdict
    recovered = world.thinnka("recover", "--json", timeout=120)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "failed"), shown["error"]
    assert shown["error"]["reason"] == "push_failed"

    # The command pushes the model by hand once the Hub works again. The emulated pod is
    # this machine, and its volume outlives it: run the command here, as ssh would there.
    world.hub.clear_faults()
    pushed = subprocess.run(
        ["bash", "-c", shlex.split(command[1])[0]],
        env={"PATH": os.environ["PATH"], "HOME": str(world.remote_root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    assert "End of training" in [c.summary for c in world.hub.commits(repo)]


def test_a_trainer_that_fails_before_saving_a_model_is_training_failed_not_held(
    standin_world: World,
) -> None:
    """No model saved by this job (a stale one from before does not count): nothing to
    push and nothing to keep, so the trainer's failure stands and the pod goes at once."""
    world = standin_world
    tell_standin(world, fail=True)
    repo = f"{world.hub.user}/{REPO}"
    stale = world.remote_root / "models" / repo.replace("/", "-") / "model.safetensors"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier run's weights")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    argv = standin_run(world, "--hub-model-id", repo, "--watchdog-grace", str(GRACE))
    done = world.thinnka(*argv, timeout=240)
    assert done.returncode == 1, done.stderr[-3000:]
    shown = world.show(done.stdout.split()[1])
    assert (shown["state"], shown["outcome"]) == ("terminated", "failed"), shown["error"]
    assert shown["error"]["reason"] == "training_failed", shown["error"]
    assert "did not push it" not in done.stdout + done.stderr  # thinnka_push.py stayed out
    assert world.runpod.pods() == []
