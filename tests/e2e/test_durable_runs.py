"""Durable runs end to end: a pod lost under a real TRL training is replaced by a new one
that resumes from the last checkpoint (on the Hub, or on a network volume).

The emulated pods get disks of their own here (``FakeRunpod.use_disks``): a lost pod's disk
is deleted with it, as on Runpod, so a resume that relied on the dead pod's files would fail;
a network volume's folder survives and the next pod in its data center mounts it. Each step
of the tiny model is given a GPU's step time (``tests/world/slow_steps``), so that the pod
can be lost between two checkpoints.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.thinnka_world import World
from tests.world.images import POD_PATH
from tests.world.webhook import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CPU = ["--trainer", "trl", "--set", "use_cpu=true", "--set", "bf16=false",
       "--set", "torch_dtype=float32"]  # fmt: skip
STEPS = 8  # saves at 2, 4, 6: the pod is lost well before the end, even on a busy machine
SLOW_STEPS = Path(__file__).resolve().parents[1] / "world" / "slow_steps"
_LOSS = re.compile(r"['\"]loss['\"]:")
_RESUMED = re.compile(r"thinnka: trainer resumes from \S*checkpoint-(\d+)")


def _durable(world: World, tmp_path: Path, step_s: float = 1.0) -> None:
    """Pods with disks of their own, and steps that take ``step_s``."""
    world.runpod.use_disks(world.remote_root, tmp_path / "disks")
    path = f"{world.workdir.parent / 'pod-tools'}:{POD_PATH}"
    env = {"PATH": path, "PYTHONPATH": str(SLOW_STEPS), "THINNKA_TEST_STEP_S": str(step_s)}
    world.runpod.set_image_env("*", env)


def _start(world: World, tmp_path: Path, *extra: str) -> tuple[str, subprocess.Popen[str]]:
    out, err = (tmp_path / "run.out").open("w"), (tmp_path / "run.err").open("w")
    argv = world.command(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", str(STEPS),
        "--dataset-name", world.hub.datasets.sft, "--set", "save_steps=2",
        "--watchdog-grace", "5", *CPU, *extra,
    )  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=world.workdir, env=world.env, stdout=out, stderr=err, text=True
    )
    first = _wait_for("the run id", lambda: _first_line(tmp_path / "run.out"), 60)
    return first.split()[1], proc


def _said(tmp_path: Path) -> str:
    return (tmp_path / "run.out").read_text()[-3000:] + (tmp_path / "run.err").read_text()[-3000:]


def _first_line(path: Path) -> str | None:
    text = path.read_text()
    return text.splitlines()[0] if text.startswith("run r-") and "\n" in text else None


def _wait_for(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _hub_checkpoint(world: World, repo: str) -> bool:
    return any(c.summary.endswith(", checkpoint") for c in world.hub.commits(repo))


def _assert_resumed(world: World, run_id: str, restart_step: int) -> None:
    """The trainer resumed from the checkpoint the restart named, and trained only the steps
    after it (every step logs one loss dict: logging_steps 1)."""
    log = (world.workdir / "state" / "runs" / run_id / "remote.log").read_text()
    resumed = list(_RESUMED.finditer(log))
    assert len(resumed) == 1, log[-3000:]
    step = int(resumed[0][1])
    assert step == restart_step >= 2
    after = log[resumed[0].end() :]
    assert len(_LOSS.findall(after)) == STEPS - step, after[-3000:]


def _restart_event(shown: dict[str, Any]) -> dict[str, Any]:
    restarts = [e for e in shown["events"] if e["kind"] == "restart"]
    assert len(restarts) == 1, shown["events"]
    return restarts[0]  # type: ignore[no-any-return]


def _final_model_only(world: World, repo: str, run_id: str) -> None:
    files = world.hub.files(repo)
    assert json.loads(files["thinnka-run.json"])["run_id"] == run_id
    assert json.loads(files["thinnka-run.json"])["step"] == STEPS
    assert not [f for f in files if f.startswith("last-checkpoint/")], sorted(files)


def test_a_pod_lost_after_a_hub_checkpoint_is_replaced_and_the_training_resumes(
    world: World, tmp_path: Path
) -> None:
    _durable(world, tmp_path)
    with WebhookReceiver() as hook:
        world.write_dotenv(PROGRESS_WEBHOOK_URL=hook.url)
        run_id, proc = _start(world, tmp_path)
        repo = _wait_for("the target", lambda: world.show(run_id).get("hub_model_id"), 60)
        _wait_for("a checkpoint on the Hub", lambda: _hub_checkpoint(world, repo), 300)
        first_pod = world.show(run_id)["pod_id"]
        world.runpod.lose_pod(first_pod)  # a host failure: the pod and its disk are gone
        assert proc.wait(timeout=600) == 0, _said(tmp_path)
    [restarted] = [e for e in hook.received if e.get("event") == "restart"]
    assert (restarted["restart"], restarted["lost_pod"]) == (1, first_pod)
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    ledger = world.runpod.ledger()
    assert len(ledger) == 2 and all(entry.terminated_at is not None for entry in ledger)
    assert world.runpod.pods() == []
    event = _restart_event(shown)
    step = int(re.search(r"checkpoint at step (\d+) on the Hub", event["message"])[1])  # type: ignore[index]
    assert first_pod in event["message"] and "restart 1 of 2" in event["message"]
    assert restarted["step"] == step
    _assert_resumed(world, run_id, step)
    # The lost pod's disk went with it: the new pod fetched the checkpoint from the Hub.
    log = (world.workdir / "state" / "runs" / run_id / "remote.log").read_text()
    assert f"thinnka: restored checkpoint-{step} from {repo}" in log
    _final_model_only(world, repo, run_id)
    # Both pods are the run's cost, and `show` lists them.
    assert len(shown["pods"]) == 2 and shown["pods"][0]["pod_id"] == first_pod
    assert shown["cost_usd"] > shown["pods"][0]["cost_usd"] > 0


def test_a_pod_lost_with_a_network_volume_resumes_from_the_volume_in_its_data_center(
    world: World, tmp_path: Path
) -> None:
    _durable(world, tmp_path)
    run_id, proc = _start(world, tmp_path, "--network-volume", "durable-vol", "--volume-gb", "20")
    disks = tmp_path / "disks"

    def saved() -> bool:
        return any(disks.glob(f"volume-*/thinnka/{run_id}/output/checkpoint-*/trainer_state.json"))

    _wait_for("a checkpoint on the volume", saved, 300)
    first_pod = world.show(run_id)["pod_id"]
    world.runpod.lose_pod(first_pod)
    assert proc.wait(timeout=600) == 0, _said(tmp_path)
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    assert world.runpod.pods() == [] and len(world.runpod.ledger()) == 2
    volumes = world.runpod.volumes()
    assert [(v["name"], v["size"]) for v in volumes] == [("durable-vol", 20)]  # never deleted
    for bill in world.runpod.world.bills.values():  # both pods: the volume's data center
        assert bill.pod.inputs["dataCenterId"] == volumes[0]["dataCenter"]
        assert bill.pod.inputs["networkVolumeId"] == volumes[0]["id"]
        assert bill.pod.inputs["volumeMountPath"] == str(world.remote_root)
    event = _restart_event(shown)
    step = int(re.search(r"checkpoint at step (\d+) on the network volume", event["message"])[1])  # type: ignore[index]
    _assert_resumed(world, run_id, step)
    repo = shown["hub_model_id"]
    _final_model_only(world, repo, run_id)
    # Checkpoints went to the volume, never to the Hub.
    assert not _hub_checkpoint(world, repo)
    doctor = world.thinnka("doctor")
    assert f"durable-vol ({volumes[0]['id']}, 20 GB, {volumes[0]['dataCenter']})" in doctor.stdout


def _killed_and_lost(world: World, tmp_path: Path) -> tuple[str, str]:
    """A run whose orchestrator was SIGKILLed after a Hub checkpoint, then its pod lost."""
    _durable(world, tmp_path)
    run_id, proc = _start(world, tmp_path)
    repo = _wait_for("the target", lambda: world.show(run_id).get("hub_model_id"), 60)
    _wait_for("a checkpoint on the Hub", lambda: _hub_checkpoint(world, repo), 300)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    world.runpod.lose_pod(world.show(run_id)["pod_id"])
    return run_id, repo


def test_resume_restarts_and_follows_a_training_whose_pod_and_orchestrator_died(
    world: World, tmp_path: Path
) -> None:
    run_id, repo = _killed_and_lost(world, tmp_path)
    resumed = world.thinnka("resume", run_id, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    assert len(world.runpod.ledger()) == 2 and world.runpod.pods() == []
    step = int(re.search(r"at step (\d+) on the Hub", _restart_event(shown)["message"])[1])  # type: ignore[index]
    _assert_resumed(world, run_id, step)
    _final_model_only(world, repo, run_id)


def test_recover_restarts_a_training_whose_pod_and_orchestrator_both_died(
    world: World, tmp_path: Path
) -> None:
    run_id, repo = _killed_and_lost(world, tmp_path)
    recovered = world.thinnka("recover", "--json", timeout=300)
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    shown = world.show(run_id)
    assert shown["state"] == "training"  # restarted, detached: recover does not follow it
    assert len(world.runpod.ledger()) == 2 and len(world.runpod.pods()) == 1
    step = int(re.search(r"at step (\d+)", _restart_event(shown)["message"])[1])  # type: ignore[index]

    def finished() -> bool:
        world.thinnka("recover", timeout=300)
        return bool(world.show(run_id)["state"] == "terminated")

    _wait_for("recover to finish the run", finished, 400)
    shown = world.show(run_id)
    assert shown["outcome"] == "succeeded", shown.get("error")
    assert world.runpod.pods() == []
    _final_model_only(world, repo, run_id)
    # recover never followed the log: the new pod's output is in the resumed run's Hub marker.
    assert step >= 2


@pytest.mark.parametrize(
    ("max_restarts", "stopped_by"),
    [
        ("1", "--max-restarts 1 reached"),
        ("2", "no checkpoint was saved, and the run already restarted from scratch once"),
    ],
)
def test_max_restarts_bounds_a_pod_lost_every_time(
    world: World, tmp_path: Path, max_restarts: str, stopped_by: str
) -> None:
    """Lost before any checkpoint, twice: the first loss restarts from scratch (and says so);
    the second is past --max-restarts 1, or (with 2) a second restart from scratch: failed
    with pod_lost, nothing left running."""
    _durable(world, tmp_path, step_s=5.0)
    run_id, proc = _start(world, tmp_path, "--max-restarts", max_restarts)
    lost: list[str] = []
    for _ in range(2):

        def training() -> str | None:
            shown = world.show(run_id)
            pod = shown["pod_id"]
            return pod if shown["state"] == "training" and pod not in lost else None

        lost.append(_wait_for("training on a new pod", training, 300))
        world.runpod.lose_pod(lost[-1])
    assert proc.wait(timeout=120) == 1
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "failed")
    assert shown["error"]["reason"] == "pod_lost"
    assert stopped_by in shown["error"]["message"]
    assert "restarts from scratch (once)" in _restart_event(shown)["message"]
    assert world.runpod.pods() == [] and len(world.runpod.ledger()) == 2
