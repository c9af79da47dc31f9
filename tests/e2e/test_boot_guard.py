"""A pod is bounded from its first second: the orchestrator dies before the first job.

The real ``thinnka`` program creates the pod; the emulated Runpod runs the pod's start
command as Runpod would (tests/world/_runpod_podkeys.py), so the boot guard it carries
runs with the pod's own key. The orchestrator is killed with SIGKILL while the pod boots,
or after SSH but before the first job; nothing else runs. The pod must end itself, and
``recover`` then finishes the run from what it finds (the pod is gone: ``pod_lost``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.plugins.thinnka_world import World
from tests.world.standin_trainer import (  # noqa: F401 - fixtures
    standin_run,
    standin_venv_fixture,
    standin_world_fixture,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def wait_for(what: str, check: object, seconds: float) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < seconds, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def _recovered_as_pod_lost(world: World, run_id: str) -> None:
    recovered = world.thinnka("recover", "--json", timeout=120)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "failed"), shown["error"]
    assert shown["error"]["reason"] == "pod_lost"
    assert world.runpod.pods() == [] and len(world.runpod.ledger()) == 1


def test_the_orchestrator_dies_while_the_pod_boots_the_pod_ends_itself_then_pod_lost(
    standin_world: World,
) -> None:
    world = standin_world
    boot = 3.0
    world.runpod.set_boot_delay(boot)  # the pod exists; its container starts in 3 s
    # The guard waits as long as thinnka waits for SSH (1 min), plus 5 x the grace, from the
    # container's start: after the spawn, and at most `boot` after the pod's id is on record
    # (the create came before). Timed from those two, not from the kill, which comes late
    # on a busy machine (each `show` is a whole thinnka program).
    spawned = time.monotonic()
    proc = world.spawn(*standin_run(world, "--ssh-timeout-min", "1", "--watchdog-grace", "2"))
    assert proc.stdout is not None
    run_id = proc.stdout.readline().split()[1]
    wait_for("the pod's id on record", lambda: world.show(run_id)["pod_id"] is not None, 120)
    on_record = time.monotonic()
    proc.send_signal(signal.SIGKILL)  # while it waits for SSH
    assert proc.wait(timeout=30) == -signal.SIGKILL
    (pod,) = world.runpod.pods()
    try:
        wait_for("the pod to end itself", lambda: world.runpod.pod(pod.id) is None, 120)
    except AssertionError as exc:  # what the guard said, to tell a slow machine from a bug
        raise AssertionError(f"{exc}\n{world.runpod.container_log(pod.id)[-3000:]}") from None
    ended = time.monotonic()
    assert ended - spawned > 60 + 10 - 2, ended - spawned  # not before the boot limit
    assert ended - on_record < boot + 60 + 10 + 15, ended - on_record  # nor long after it
    entry = next(e for e in world.runpod.ledger() if e.pod_id == pod.id)
    assert entry.terminated_by == "pod:rest"  # with the pod's own key: its guard
    assert "terminating the pod: nobody connected" in world.runpod.container_log(pod.id)
    _recovered_as_pod_lost(world, run_id)


def test_the_orchestrator_dies_after_ssh_before_the_first_job_the_pod_ends_itself(
    standin_world: World,
) -> None:
    world = standin_world
    env = dict(world.env, THINNKA_CRASH_AT="install:before")  # SIGKILLs itself there
    argv = world.command(*standin_run(world, "--watchdog-grace", "2"))
    proc = subprocess.run(argv, cwd=world.workdir, env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_id = proc.stdout.split()[1]
    shown = world.show(run_id)
    assert shown["state"] == "connected"
    # thinnka touched the heartbeat when it connected; no job started after it.
    run_dir = world.remote_root / "thinnka" / run_id
    contact = os.stat(run_dir / "watchdog.heartbeat").st_mtime
    wait_for("the pod to end itself", lambda: world.runpod.pod(shown["pod_id"]) is None, 60)
    outlived = time.time() - contact
    assert 5 * 2 - 1 < outlived < 5 * 2 + 10, outlived  # 5 x the grace, a poll, the call
    log = world.runpod.container_log(shown["pod_id"])
    assert "terminating the pod: thinnka connected, then no job started" in log
    _recovered_as_pod_lost(world, run_id)
