"""The operating commands end to end: detach + recover, cancel, reap, gpus, doctor, logs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.plugins.thinnka_world import BOTH_TRANSPORTS, World
from tests.world.webhook import WebhookReceiver
from thinnka.settings import load_settings
from thinnka.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CPU = ["--trainer", "trl", "--set", "use_cpu=true", "--set", "bf16=false",
       "--set", "torch_dtype=float32"]  # fmt: skip


def _sft(world: World, *extra: str, steps: str = "1") -> list[str]:
    return ["run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", steps,
            "--dataset-name", world.hub.datasets.sft, *CPU, *extra]  # fmt: skip


def _installation_id(world: World) -> str:
    state = world.workdir / "state"
    settings = load_settings(environ={"THINNKA_STATE_DIR": str(state)}, cwd=world.workdir)
    return open_store(settings).installation_id()


def _stop_training(run_dir: Path) -> None:
    """Emulated pods share this machine: end a training the test left running."""
    pid_file = run_dir / "train.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def test_detach_returns_at_training_and_recover_finishes(world: World) -> None:
    with WebhookReceiver() as hook:
        world.write_dotenv(PROGRESS_WEBHOOK_URL=hook.url)
        started = world.thinnka(*_sft(world, "--detach"))
        assert started.returncode == 0, started.stderr[-2000:]
        run_id = started.stdout.split()[1]
        assert world.show(run_id)["state"] == "training"
        follower = world.spawn("logs", run_id, "-f")  # ends by itself when the run does
        exit_file = Path(world.show(run_id)["remote"]["run_dir"]) / "train.exit"
        deadline = time.monotonic() + 300
        while not exit_file.exists():  # recover finishes ended trainings, never follows one
            assert time.monotonic() < deadline
            time.sleep(0.2)
        recovered = world.thinnka("recover")
        assert recovered.returncode == 0, recovered.stderr[-2000:]
        assert f"{run_id}: terminated" in recovered.stdout
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded")
    assert len(world.runpod.ledger()) == 1 and world.runpod.pods() == []
    events = hook.events()
    for expected in ("start", "pod_created", "train_start", "detached", "progress",
                     "pushed", "done"):  # fmt: skip
        assert expected in events, events
    assert all(world.hub.tokens.write not in json.dumps(item) for item in hook.received)
    logs = world.thinnka("logs", run_id)
    assert logs.returncode == 0 and "[setup] " in logs.stdout and "[train] " in logs.stdout
    followed, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0 and followed == logs.stdout


def test_cancel_stops_a_live_run_and_terminates_its_pod(world: World) -> None:
    proc = world.spawn(*_sft(world, steps="200"))
    assert proc.stdout is not None
    run_id = proc.stdout.readline().split()[1]
    deadline = time.monotonic() + 300
    while world.show(run_id)["state"] != "training":
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.3)
    run_dir = Path(world.show(run_id)["remote"]["run_dir"])
    try:
        cancelled = world.thinnka("cancel", run_id)
        assert cancelled.returncode == 0 and "Cancel requested" in cancelled.stdout
        assert proc.wait(timeout=60) == 1
    finally:
        _stop_training(run_dir)
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "cancelled")
    assert world.runpod.pods() == [] and len(world.runpod.ledger()) == 1


@BOTH_TRANSPORTS
def test_reap_touches_only_this_installations_stray_pods(world: World, runpod_api: str) -> None:
    assert world.thinnka("ls").returncode == 0  # makes the database and installation id
    ours = _installation_id(world)
    # A pod of a run this database does not know: kept until its own bound (1 h) passed.
    stray_env = {"THINNKA_OWNER": ours, "THINNKA_RUN_ID": "r-zzzzzz", "THINNKA_MAX_HOURS": "1"}
    stray = world.runpod.add_foreign_pod("thinnka-lost-1x-r-zzzzzz", env=stray_env)
    other = world.runpod.add_foreign_pod(
        "thinnka-theirs-1x-r-yyyyyy", env={"THINNKA_OWNER": "inst-other", "THINNKA_RUN_ID": "r-y"}
    )
    jupyter = world.runpod.add_foreign_pod("my-jupyter")
    young = world.thinnka("reap", "--dry-run")
    assert young.returncode == 0 and f"kept {stray}" in young.stdout, young.stdout
    assert "would terminate" not in young.stdout
    world.runpod.advance_time(3600 + 16 * 60)
    dry = world.thinnka("reap", "--dry-run")
    assert dry.returncode == 0 and f"would terminate {stray}" in dry.stdout
    assert {pod.id for pod in world.runpod.pods()} == {stray, other, jupyter}
    reaped = world.thinnka("reap")
    assert reaped.returncode == 0 and f"terminated {stray}" in reaped.stdout
    assert {pod.id for pod in world.runpod.pods()} == {other, jupyter}
    surfaces = {r.surface for r in world.runpod.requests()}
    assert surfaces == ({"v2"} if runpod_api == "rest" else {"graphql"})


def test_gpus_and_doctor(world: World) -> None:
    table = world.thinnka("gpus")
    assert table.returncode == 0 and "NVIDIA L40S" in table.stdout
    listed = json.loads(world.thinnka("gpus", "--json", "--gpu-count", "2").stdout)
    assert {"id", "memory_gb", "price_per_hour", "stock"} <= listed[0].keys()
    assert all(offer["gpu_count"] == 2 for offer in listed)
    doctor = world.thinnka("doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert "[FAIL]" not in doctor.stdout
    assert "REST v2 (THINNKA_RUNPOD_API=rest): key accepted" in doctor.stdout
    world.write_dotenv(RUNPOD_API_KEY="rpa_wrong")
    broken = world.thinnka("doctor", "--json")
    assert broken.returncode == 1
    checks = {c["name"]: c["status"] for c in json.loads(broken.stdout)}
    assert checks["runpod"] == "fail" and checks["huggingface"] == "ok"
    assert "rpa_wrong" not in broken.stdout + broken.stderr


def test_a_pod_without_gpus_fails_clearly_unless_the_recipe_uses_the_cpu(world: World) -> None:
    result = world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "1",
        "--dataset-name", world.hub.datasets.sft, "--trainer", "trl",
    )  # fmt: skip
    assert result.returncode == 1
    shown = world.show(result.stdout.split()[1])
    assert shown["error"]["reason"] == "training_failed"
    assert "No GPU is visible on the pod" in shown["error"]["message"]
    assert world.runpod.pods() == []


def test_plan_prints_the_memory_breakdown_gpus_recipe_and_command(world: World) -> None:
    plan = world.thinnka("plan", "--repo-id", world.hub.models.chat, "--sft", *CPU)
    assert plan.returncode == 0, plan.stderr[-2000:]
    for text in ("needs", "NVIDIA L40S", "recipe", "command", "transformers"):
        assert text in plan.stdout
    data = json.loads(world.thinnka("plan", "--repo-id", world.hub.models.chat, "--json").stdout)
    assert data["recipe"] and data["accelerate"] and data["command"]
    assert data["memory"]["required_gb"] > 0 and data["gpu"] == "NVIDIA L40S"
    assert world.runpod.ledger() == []


def test_plan_works_without_any_credentials_for_a_public_model(world: World) -> None:
    world.dotenv.pop("HF_TOKEN")
    world.dotenv.pop("RUNPOD_API_KEY")
    world.dotenv.pop("SSH_PUBLIC_KEY")
    world.dotenv.pop("SSH_PRIVATE_KEY_PATH")
    world.write_dotenv()
    plan = world.thinnka("plan", "--repo-id", world.hub.models.chat, "--json")
    assert plan.returncode == 0, plan.stderr[-2000:]
    data = json.loads(plan.stdout)
    assert data["gpu"] and data["hub_model_id"].startswith("<you>/")
    assert any("write access" in warning for warning in data["warnings"])


def test_recover_cancels_a_run_that_died_before_its_pod_and_never_starts_one(
    world: World,
) -> None:
    from thinnka.options import RunOptions

    assert world.thinnka("ls").returncode == 0
    state = world.workdir / "state"
    settings = load_settings(environ={"THINNKA_STATE_DIR": str(state)}, cwd=world.workdir)
    run = open_store(settings).create_run(RunOptions(repo_id=world.hub.models.chat))
    recovered = world.thinnka("recover")
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    shown = world.show(run.id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "cancelled")
    assert "abandoned" in [event["kind"] for event in shown["events"]]
    assert world.runpod.ledger() == []


def test_two_recovers_at_once_only_the_one_that_stops_a_dead_run_writes_its_events(
    world: World,
) -> None:
    """Both passes see the dead run; only the one holding its lease says it stopped it,
    and the record names what happened (its process died), not a cancel nobody asked for."""
    from thinnka.options import RunOptions

    assert world.thinnka("ls").returncode == 0
    state = world.workdir / "state"
    settings = load_settings(environ={"THINNKA_STATE_DIR": str(state)}, cwd=world.workdir)
    run = open_store(settings).create_run(RunOptions(repo_id=world.hub.models.chat))
    passes = [world.spawn("recover"), world.spawn("recover")]
    for proc in passes:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    shown = world.show(run.id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "cancelled")
    kinds = [event["kind"] for event in shown["events"]]
    assert kinds.count("abandoned") == 1 and "cancel_requested" not in kinds, kinds
    assert shown["error"]["reason"] == "cancelled"
    assert "process died" in shown["error"]["message"], shown["error"]
    assert "on request" not in json.dumps(shown["events"])
