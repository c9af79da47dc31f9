"""The orphan cases end to end: nobody (or a dead process) follows the run; the pod ends itself.

The real ``thinnka`` program drives runs against the emulated world; the training is the
stand-in trainer (tests/world/standin_trainer.py), since these cases are about who
terminates the pod and when, not about TRL.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.plugins.thinnka_world import World
from tests.world.standin_trainer import (  # noqa: F401 - fixtures
    standin_run,
    standin_venv_fixture,
    standin_world_fixture,
    tell_standin,
)
from thinnka.handlers.push import RUN_MARKER

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

GRACE = "2"


def wait_for(what: str, check: object, seconds: float) -> float:
    """Poll ``check()`` until true; the seconds it took (fails past ``seconds``)."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < seconds, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def start_and_wait_for_training(world: World, *extra: str) -> tuple[str, object]:
    proc = world.spawn(*standin_run(world, "--watchdog-grace", GRACE, *extra))
    assert proc.stdout is not None
    run_id = proc.stdout.readline().split()[1]
    wait_for("training", lambda: world.show(run_id)["state"] == "training", 240)
    return run_id, proc


def wait_for_a_checkpoint(world: World, hub_id: str) -> None:
    """Until the trainer pushed a checkpoint ("Training in progress, step N") to ``hub_id``."""

    def pushed() -> bool:
        return any(c.summary.startswith("Training in progress") for c in world.hub.commits(hub_id))

    wait_for("a checkpoint on the Hub", pushed, 60)


def marker_of(world: World, hub_id: str) -> dict[str, object] | None:
    """The final-push marker at the head of ``hub_id`` (None without one)."""
    files = world.hub.files(hub_id)
    return json.loads(files[RUN_MARKER]) if RUN_MARKER in files else None


def test_kill_9_during_training_the_pod_ends_itself_and_resume_records_success(
    standin_world: World,
) -> None:
    """Checkpoints are pushed on the way; the final push after the completed training is
    recorded (the marker), and that, not any newer commit, makes the run a success."""
    world = standin_world
    tell_standin(world, steps=40, step_s=0.1, push_every=10)
    run_id, proc = start_and_wait_for_training(world)
    proc.kill()  # type: ignore[attr-defined]
    proc.wait(timeout=30)  # type: ignore[attr-defined]
    run_dir = Path(world.show(run_id)["remote"]["run_dir"])
    pod_id = world.show(run_id)["pod_id"]
    wait_for("the pod to go", lambda: world.runpod.pod(pod_id) is None, 60)
    gone_at = time.time()
    ended_at = (run_dir / "train.exit").stat().st_mtime
    assert (run_dir / "train.exit").read_text().strip() == "0"
    outlived = gone_at - ended_at
    assert 1.5 < outlived < 2 + 5, outlived  # the grace, plus at most a poll and the call
    entry = next(e for e in world.runpod.ledger() if e.pod_id == pod_id)
    assert entry.terminated_by == "pod:rest"
    hub_id = world.show(run_id)["hub_model_id"]
    assert world.hub.files(hub_id)["model.safetensors"] == b"stand-in weights"
    summaries = [commit.summary for commit in world.hub.commits(hub_id)]
    assert "Training in progress, step 30" in summaries, summaries
    assert summaries[-2:] == ["End of training", f"thinnka: final push of run {run_id}"]
    assert (marker_of(world, hub_id) or {})["run_id"] == run_id
    started = time.monotonic()
    resumed = world.thinnka("resume", run_id)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert time.monotonic() - started < 60
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    assert len(world.runpod.ledger()) == 1 and world.runpod.pods() == []


@pytest.mark.parametrize("finisher", ["resume", "recover"])
def test_tiny_max_hours_nobody_attached_the_pod_goes_at_the_deadline(
    standin_world: World, finisher: str
) -> None:
    """The orchestrator is killed in training; checkpoints were pushed before the deadline.
    The watchdog stops the job and ends the pod at the deadline; the run then failed with
    max_duration, whatever was pushed before, and says which checkpoint the Hub holds."""
    world = standin_world
    tell_standin(world, steps=100000, step_s=0.1, push_every=20)
    hours = 40 / 3600  # 40 s after the pod started (setup included)
    run_id, proc = start_and_wait_for_training(world, "--max-hours", f"{hours:.6f}")
    shown = world.show(run_id)
    pod_id, hub_id = shown["pod_id"], shown["hub_model_id"]
    wait_for_a_checkpoint(world, hub_id)
    proc.kill()  # type: ignore[attr-defined]
    proc.wait(timeout=30)  # type: ignore[attr-defined]
    run_dir = Path(shown["remote"]["run_dir"])
    config = json.loads((run_dir / "watchdog.json").read_text())
    deadline = config["pod_started_epoch"] + hours * 3600
    wait_for("the pod to go", lambda: world.runpod.pod(pod_id) is None, 90)
    assert -1 < time.time() - deadline < 10
    verdict = json.loads((run_dir / "watchdog.verdict").read_text())
    assert verdict["reason"] == "max_duration"
    assert marker_of(world, hub_id) is None  # the training never ended: no final push

    finished = world.thinnka(finisher, *([run_id] if finisher == "resume" else ["--json"]))
    assert finished.returncode == (1 if finisher == "resume" else 0), finished.stderr[-2000:]
    if finisher == "recover":
        mine = next(i for i in json.loads(finished.stdout)["runs"] if i["run_id"] == run_id)
        assert (mine["action"], mine["reason"]) == ("driven", "max_duration"), mine
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "failed")
    assert shown["error"]["reason"] == "max_duration", shown["error"]
    assert f"{hub_id} holds an intermediate checkpoint at step " in shown["error"]["message"]
    ls = world.thinnka("ls", "--all")
    assert "max_duration" in ls.stdout, ls.stdout


def test_ctrl_c_in_training_detaches_and_recover_leaves_the_training_running(
    standin_world: World,
) -> None:
    world = standin_world
    tell_standin(world, steps=100000, step_s=0.1)
    run_id, proc = start_and_wait_for_training(world)
    beside = json.loads(world.thinnka("recover", "--json").stdout)  # racing a live run
    assert run_id not in [item["run_id"] for item in beside["runs"]]
    assert proc.poll() is None and world.show(run_id)["state"] == "training"  # type: ignore[attr-defined]
    proc.send_signal(signal.SIGINT)  # type: ignore[attr-defined]
    out, err = proc.communicate(timeout=60)  # type: ignore[attr-defined]
    assert proc.returncode == 130, err[-2000:]  # type: ignore[attr-defined]
    said = out + err
    assert f"thinnka logs -f {run_id}" in said and f"thinnka cancel {run_id}" in said
    started = time.monotonic()
    recovered = world.thinnka("recover", "--json")
    took = time.monotonic() - started
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert took < 30, took
    report = json.loads(recovered.stdout)
    mine = next(item for item in report["runs"] if item["run_id"] == run_id)
    assert mine["action"] == "left_running" and mine["state"] == "training"
    shown = world.show(run_id)
    assert shown["state"] == "training" and world.runpod.pod(shown["pod_id"]) is not None
    assert shown["cost_usd"] > 0  # recorded progress and cost
    again = json.loads(world.thinnka("recover", "--json").stdout)  # idempotent
    assert [i["action"] for i in again["runs"] if i["run_id"] == run_id] == ["left_running"]
    cancelled = world.thinnka("cancel", run_id)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "cancelled")
    assert world.runpod.pods() == []


def test_a_pod_lost_during_training_fails_the_run_with_pod_lost_within_a_minute(
    standin_world: World,
) -> None:
    """A checkpoint was pushed before the pod went: it is named, not taken for the model."""
    world = standin_world
    tell_standin(world, steps=100000, step_s=0.1, push_every=5)
    # --max-restarts 0: no new pod (tests/e2e/test_durable_runs.py has the restarts).
    run_id, proc = start_and_wait_for_training(world, "--max-restarts", "0")
    hub_id = world.show(run_id)["hub_model_id"]
    wait_for_a_checkpoint(world, hub_id)
    world.runpod.kill_pod(world.show(run_id)["pod_id"], vanish=True)  # console terminate
    started = time.monotonic()
    assert proc.wait(timeout=60) == 1  # type: ignore[attr-defined]
    assert time.monotonic() - started < 60
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "failed")
    assert shown["error"]["reason"] == "pod_lost", shown["error"]
    assert f"{hub_id} holds an intermediate checkpoint at step " in shown["error"]["message"]
    assert world.runpod.pods() == [] and len(world.runpod.ledger()) == 1


def test_a_repo_the_trainer_created_with_nothing_pushed_is_no_success(
    standin_world: World,
) -> None:
    """The trainer creates the missing target repo (the Hub's .gitattributes commit), then
    the pod stops (EXITED) before any push: that commit is not the model."""
    world = standin_world
    tell_standin(world, steps=100000, step_s=0.1)
    run_id, proc = start_and_wait_for_training(world, "--max-restarts", "0")
    shown = world.show(run_id)
    hub_id = shown["hub_model_id"]
    assert shown["remote"]["hub_baseline"] is None  # the repo did not exist before training

    def created() -> bool:
        try:
            return bool(world.hub.files(hub_id))
        except KeyError:
            return False

    wait_for("the trainer to create the repo", created, 60)
    world.runpod.kill_pod(shown["pod_id"])  # EXITED: the host stopped it
    assert proc.wait(timeout=60) == 1  # type: ignore[attr-defined]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "failed")
    assert shown["error"]["reason"] == "pod_lost", shown["error"]
    assert f"{hub_id} was created" in shown["error"]["message"]
    assert set(world.hub.files(hub_id)) == {".gitattributes"}
    assert world.runpod.pods() == []


@pytest.mark.parametrize("finisher", ["resume", "recover"])
def test_the_orchestrator_dies_between_jobs_the_idle_pod_ends_itself_then_pod_lost(
    standin_world: World, finisher: str
) -> None:
    """Killed after setup ended, before the training started; nothing runs afterwards."""
    world = standin_world
    env = dict(world.env, THINNKA_CRASH_AT="install:after_write")  # setup done, no training
    argv = world.command(*standin_run(world, "--watchdog-grace", "1"))
    died = subprocess.run(argv, cwd=world.workdir, env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    run_id = died.stdout.split()[1]
    shown = world.show(run_id)
    assert shown["state"] == "installed"
    run_dir, pod_id = Path(shown["remote"]["run_dir"]), shown["pod_id"]
    config = json.loads((run_dir / "watchdog.json").read_text())
    assert config["orphan_grace_s"] == 5.0  # five grace periods
    wait_for("the idle pod to go", lambda: world.runpod.pod(pod_id) is None, 60)
    outlived = time.time() - (run_dir / "setup.exit").stat().st_mtime
    assert 4.5 < outlived < 5 + 5, outlived  # the orphan grace, plus a poll and the call
    assert not (run_dir / "train.started").exists()
    verdict = json.loads((run_dir / "watchdog.verdict").read_text())
    assert verdict["reason"] == "idle_between_jobs", verdict
    assert next(e for e in world.runpod.ledger() if e.pod_id == pod_id).terminated_by == "pod:rest"

    started = time.monotonic()
    finished = world.thinnka(finisher, *([run_id] if finisher == "resume" else ["--json"]))
    assert time.monotonic() - started < 60
    assert finished.returncode == (1 if finisher == "resume" else 0), finished.stderr[-2000:]
    if finisher == "recover":
        mine = next(i for i in json.loads(finished.stdout)["runs"] if i["run_id"] == run_id)
        assert (mine["action"], mine["reason"]) == ("driven", "pod_lost"), mine
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "failed")
    assert shown["error"]["reason"] == "pod_lost"
    assert "idle between jobs" in shown["error"]["message"]
    kinds = [event["kind"] for event in shown["events"]]
    assert "abandoned" not in kinds and kinds[-2:] == ["fail", "cleanup"], kinds
    assert len(world.runpod.ledger()) == 1 and world.runpod.pods() == []
