"""The pod's boot guard script against the emulated Runpod.

The guard runs as the real script (``sh thinnka_boot_guard.sh``) with the env a pod gets
(the pod-scoped key the emulator issues, thinnka's bounds), against a run folder laid
out as thinnka and ``job.sh`` leave it; the pod it terminates is a pod of the emulator.
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.world.runpod import FakeRunpod
from thinnka.options import RunOptions
from thinnka.pod.bootguard import START_COMMAND, START_SCRIPTS, boot_guard_env
from thinnka.resources import resource_dir

SCRIPT = resource_dir("recipes") / "scripts" / "thinnka_boot_guard.sh"
# Room after a bound for the guard's terminate call (a python3 that starts, then an HTTP
# DELETE): seconds when pytest-xdist workers share two cores. "Not before the bound" is
# exact; the guard polls at most every second here.
_BUSY = 3


def _guard(
    fake: FakeRunpod, pod_id: str, run_dir: Path, *, path: str | None = None, **bounds: float
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "THINNKA_"))}
    env.update(fake.pod_env(pod_id), THINNKA_RUN_DIR=str(run_dir))
    env.update({f"THINNKA_{k.upper()}": str(int(v)) for k, v in bounds.items()})
    if path is not None:
        env["PATH"] = path
    return subprocess.Popen(
        ["/bin/sh", str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _gone_within(fake: FakeRunpod, pod_id: str, seconds: float) -> float:
    started = time.monotonic()
    while fake.pod(pod_id) is not None:
        assert time.monotonic() - started < seconds, f"pod {pod_id} still exists"
        time.sleep(0.05)
    return time.monotonic() - started


def _said(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.kill()
    out, _ = proc.communicate(timeout=10)
    return out


def _terminated_by(fake: FakeRunpod, pod_id: str) -> str | None:
    return next(e.terminated_by for e in fake.ledger() if e.pod_id == pod_id)


def test_nobody_connects_the_pod_ends_after_the_boot_limit(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    pod_id = runpod_account.add_foreign_pod("thinnka-test-1x-r-abc123")
    key = runpod_account.pod_env(pod_id)["RUNPOD_API_KEY"]
    proc = _guard(runpod_account, pod_id, tmp_path / "run", boot_s=2, orphan_s=4, deadline=0)
    took = _gone_within(runpod_account, pod_id, 15)
    assert 1.5 <= took < 5 + _BUSY, took  # not before the limit, not long after it
    assert _terminated_by(runpod_account, pod_id) == "pod:rest"
    said = _said(proc)  # its last words: the pod's processes die with the pod
    assert "terminating the pod: nobody connected within" in said
    assert key not in said


def test_after_contact_the_first_job_gets_the_orphan_grace_and_a_heartbeat_holds_it(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    pod_id = runpod_account.add_foreign_pod("thinnka-test-1x-r-abc123")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    heartbeat = run_dir / "watchdog.heartbeat"
    heartbeat.write_text("now\n")  # thinnka connected (the connect step writes it)
    proc = _guard(runpod_account, pod_id, run_dir, boot_s=1, orphan_s=3, deadline=0)
    held_until = time.monotonic() + 5  # past the boot limit and the orphan grace
    while time.monotonic() < held_until:
        heartbeat.write_text("now\n")  # a live orchestrator follows
        assert runpod_account.pod(pod_id) is not None
        time.sleep(0.5)
    took = _gone_within(runpod_account, pod_id, 15)
    assert 2 <= took < 6 + _BUSY, took
    assert "thinnka connected, then no job started" in _said(proc)


def test_once_a_job_started_the_watchdog_guards_and_only_the_deadline_is_left(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    pod_id = runpod_account.add_foreign_pod("thinnka-test-1x-r-abc123")
    run_dir = tmp_path / "run"
    (run_dir / "setup.started").mkdir(parents=True)
    proc = _guard(runpod_account, pod_id, run_dir, boot_s=1, orphan_s=1, deadline=0)
    assert proc.wait(timeout=10) == 0
    assert "the watchdog guards the pod" in _said(proc)
    assert runpod_account.pod(pod_id) is not None
    proc = _guard(runpod_account, pod_id, run_dir, boot_s=1, orphan_s=1,
                  deadline=time.time() + 3)  # fmt: skip
    took = _gone_within(runpod_account, pod_id, 15)
    assert 1.5 <= took < 6 + _BUSY, took
    assert "the run's deadline passed" in _said(proc)


def test_without_python3_it_terminates_with_curl(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    tools = tmp_path / "bin"  # an image with a shell, coreutils and curl, and no python3
    tools.mkdir()
    for tool in ("date", "stat", "sleep", "curl"):
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} is not installed")
        (tools / tool).symlink_to(found)
    pod_id = runpod_account.add_foreign_pod("thinnka-test-1x-r-abc123")
    proc = _guard(runpod_account, pod_id, tmp_path / "run", path=str(tools), boot_s=1,
                  orphan_s=4, deadline=0)  # fmt: skip
    _gone_within(runpod_account, pod_id, 10)
    assert _terminated_by(runpod_account, pod_id) == "pod:rest"  # curl's DELETE
    assert "terminating the pod" in _said(proc)


def test_the_start_command_runs_the_guard_then_the_images_start_script(tmp_path: Path) -> None:
    """As Runpod runs it (split like a shell, in place of the image's CMD), with the
    images' start scripts at test paths: the first is missing, the second runs."""
    start = tmp_path / "start.sh"
    start.write_text(f"#!/bin/sh\necho started > {tmp_path / 'image'}\n")
    start.chmod(0o755)
    command = START_COMMAND.replace(START_SCRIPTS[0], str(tmp_path / "missing.sh"))
    command = command.replace(START_SCRIPTS[1], str(start))
    guard = f"echo guarded > {tmp_path / 'guard'}"
    env = dict(os.environ, THINNKA_BOOT_GUARD=base64.b64encode(guard.encode()).decode())
    subprocess.run(shlex.split(command), env=env, timeout=30, check=True)
    deadline = time.monotonic() + 10
    while not (tmp_path / "guard").exists():  # the guard runs in the background
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (tmp_path / "image").read_text() == "started\n"
    assert (tmp_path / "guard").read_text() == "guarded\n"


def test_thinnkas_image_runs_a_start_script_the_start_command_runs() -> None:
    dockerfile = (Path(__file__).parents[2] / "docker" / "Dockerfile").read_text()
    (cmd,) = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    assert cmd == f'CMD ["{START_SCRIPTS[0]}"]'


def test_the_guard_env_holds_the_script_and_bounds_and_no_secret(tmp_path: Path) -> None:
    import datetime as dt

    options = RunOptions(repo_id="org/m", ssh_timeout_min=20, watchdog_grace=120.0,
                         max_hours=2.0)  # fmt: skip
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    env = boot_guard_env(options, "/workspace/thinnka/r-abc123", created, 0.79)
    assert base64.b64decode(env["THINNKA_BOOT_GUARD"]) == SCRIPT.read_bytes()
    assert env["THINNKA_BOOT_S"] == str(20 * 60 + 600)  # the SSH wait, then the orphan grace
    assert env["THINNKA_ORPHAN_S"] == "600"
    assert env["THINNKA_DEADLINE"] == str(int(created.timestamp()) + 2 * 3600 + 120)
    assert not any(key.startswith("RUNPOD_") for key in env)


def _cluster(fake: FakeRunpod) -> tuple[str, list[str]]:
    """An Instant Cluster of two nodes: (its id, its member pod ids by rank)."""
    body = {"name": "thinnka-test-2x-r-abc123", "type": "TRAINING", "image": "runpod/pytorch:t",
            "compute": {"gpuTypeId": "NVIDIA H100 80GB HBM3", "gpuCountPerPod": 8,
                        "podCount": 2}}  # fmt: skip
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(base_url=fake.rest_url, headers=headers, trust_env=False) as v2:
        created = v2.post("/clusters", json=body)
        assert created.status_code == 201, created.text
        pods = v2.get(f"/clusters/{created.json()['id']}/pods").json()["pods"]
    return created.json()["id"], [p["id"] for p in sorted(pods, key=lambda p: p["cluster"]["rank"])]


@pytest.mark.parametrize("known", [False, True], ids=["asks-the-api", "from-the-run-folder"])
def test_a_cluster_node_nobody_connected_deletes_its_whole_cluster(
    runpod_account: FakeRunpod, tmp_path: Path, known: bool
) -> None:
    """A member pod's own delete is a 409: the guard deletes its cluster instead, whose id it
    reads from the run folder (thinnka wrote it on first contact) or, before any contact,
    from the API's view of its own pod."""
    cluster_id, members = _cluster(runpod_account)
    run_dir = tmp_path / "run"
    if known:
        run_dir.mkdir()
        (run_dir / "cluster.id").write_text(f"{cluster_id}\n")
    key = runpod_account.pod_env(members[1])["RUNPOD_API_KEY"]
    proc = _guard(runpod_account, members[1], run_dir, boot_s=1, orphan_s=4, deadline=0)
    for pod_id in members:  # one delete ends every node
        _gone_within(runpod_account, pod_id, 15)
    assert {_terminated_by(runpod_account, p) for p in members} == {"pod:cluster"}
    said = _said(proc)
    assert f"member of cluster {cluster_id}; deleting the cluster" in said, said
    assert key not in said
