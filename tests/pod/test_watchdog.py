"""The pod's watchdog script against the emulated Runpod, and the emulator's pod-scoped keys.

The watchdog runs as the real script (``python3 thinnka_watchdog.py RUN_DIR``) with the
env a pod gets, against a run folder laid out as ``job.sh`` leaves it; the pod it
terminates is a pod of the emulator, which gives every pod its own scoped key.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.world.runpod import FakeRunpod
from tests.world.sshd import FakeSshd, generate_key
from thinnka.options import RunOptions
from thinnka.options.limits import run_limit
from thinnka.resources import resource_dir

SCRIPT = resource_dir("recipes") / "scripts" / "thinnka_watchdog.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("thinnka_watchdog", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pod(fake: FakeRunpod, **env: str) -> str:
    return fake.add_foreign_pod("thinnka-test-1x-r-abc123", env=env)


def _run_dir(tmp_path: Path, **config: object) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    base = {"chain": ["train"], "grace_s": 1.0, "poll_s": 0.1}
    (run_dir / "watchdog.json").write_text(json.dumps({**base, **config}))
    return run_dir


def _finished(run_dir: Path, code: int, name: str = "train") -> None:
    (run_dir / f"{name}.started").mkdir()
    (run_dir / f"{name}.pid").write_text("999999\n")
    (run_dir / f"{name}.exit").write_text(f"{code}\n")


def _start(run_dir: Path, fake: FakeRunpod, pod_id: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(fake.pod_env(pod_id))
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(run_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _gone_within(fake: FakeRunpod, pod_id: str, seconds: float) -> float:
    started = time.monotonic()
    while fake.pod(pod_id) is not None:
        assert time.monotonic() - started < seconds, f"pod {pod_id} still exists"
        time.sleep(0.05)
    return time.monotonic() - started


def test_each_pod_gets_a_key_that_may_only_terminate_its_own_pod(
    runpod_account: FakeRunpod,
) -> None:
    mine, other = _pod(runpod_account), _pod(runpod_account)
    env = runpod_account.pod_env(mine)
    assert env["RUNPOD_POD_ID"] == mine and env["RUNPOD_API_BASE_URL"] == runpod_account.base_url
    key = env["RUNPOD_API_KEY"]
    assert key not in (runpod_account.api_key, runpod_account.read_only_key)
    assert key not in json.dumps(runpod_account.pod(mine).env)  # not shown in the pod's listing
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=runpod_account.base_url, headers=auth) as client:
        assert client.get("/v2/pods").status_code == 403
        assert client.delete(f"/v2/pods/{other}").status_code == 403
        foreign = {"query": f'mutation {{ podTerminate(input: {{podId: "{other}"}}) }}'}
        assert "errors" in client.post("/graphql", json=foreign).json()
        assert runpod_account.pod(other) is not None
        assert client.delete(f"/v2/pods/{mine}").status_code == 204
        assert runpod_account.pod(mine) is None
        assert client.delete(f"/v2/pods/{mine}").status_code == 401  # the key died with it
    other_key = runpod_account.pod_env(other)["RUNPOD_API_KEY"]
    own = {
        "query": "mutation T($input: PodTerminateInput!) { podTerminate(input: $input) }",
        "variables": {"input": {"podId": other}},
    }
    answer = httpx.post(
        f"{runpod_account.base_url}/graphql",
        json=own,
        headers={"Authorization": f"Bearer {other_key}"},
    ).json()
    assert "errors" not in answer and runpod_account.pod(other) is None
    by = {entry.pod_id: entry.terminated_by for entry in runpod_account.ledger()}
    assert by == {mine: "pod:rest", other: "pod:graphql"}


def test_the_pods_env_reaches_its_processes_and_dies_with_the_pod(
    runpod_account: FakeRunpod, sshd_pod: FakeSshd, tmp_path: Path
) -> None:
    keys = generate_key(tmp_path / "id_ed25519", "pod-env")
    pod_id = _pod(runpod_account, PUBLIC_KEY=keys.public_key)
    command = sshd_pod.ssh_command(
        'echo "$RUNPOD_POD_ID"; setsid nohup sleep 300 >/dev/null 2>&1 < /dev/null & echo $!',
        key=keys.private_key_path,
    )
    out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
    seen_id, sleeper = out.split()
    assert seen_id == pod_id
    os.kill(int(sleeper), 0)  # the pod's process runs
    runpod_account.world.terminate(runpod_account.world.find(pod_id)[0], pod_id)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{sleeper}").exists() and _state(int(sleeper)) != "Z":
        assert time.monotonic() < deadline, "the pod's process outlived the pod"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return "gone"


def test_watchdog_terminates_its_pod_after_the_grace_when_nobody_follows(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    pod_id = _pod(runpod_account)
    run_dir = _run_dir(tmp_path)
    _finished(run_dir, 0)
    key = runpod_account.pod_env(pod_id)["RUNPOD_API_KEY"]
    proc = _start(run_dir, runpod_account, pod_id)
    took = _gone_within(runpod_account, pod_id, 10)
    assert 0.9 <= took < 5  # not before the grace, not long after it
    assert proc.wait(timeout=10) in (0, -signal.SIGKILL)  # it may die with its pod
    assert _terminated_by(runpod_account, pod_id) == "pod:rest"
    assert json.loads((run_dir / "watchdog.verdict").read_text())["reason"] == "succeeded"
    log = proc.stdout.read() if proc.stdout else ""
    assert "terminating the pod" in log
    assert key not in log and key not in (run_dir / "watchdog.verdict").read_text()


@pytest.mark.parametrize(
    ("config", "idle_s"),
    [({"grace_s": 0.3}, 1.5), ({"grace_s": 0.3, "orphan_grace_s": 2.5}, 2.5)],
    ids=["default-five-graces", "from-watchdog.json"],
)
def test_a_pod_left_idle_between_jobs_ends_after_the_orphan_grace(
    runpod_account: FakeRunpod, tmp_path: Path, config: dict[str, float], idle_s: float
) -> None:
    """The orchestrator died after setup ended: nobody will start the training."""
    pod_id = _pod(runpod_account)
    run_dir = _run_dir(tmp_path, chain=["setup", "train"], **config)
    _finished(run_dir, 0, "setup")
    proc = _start(run_dir, runpod_account, pod_id)
    took = _gone_within(runpod_account, pod_id, idle_s + 10)
    assert idle_s - 0.1 <= took < idle_s + 4  # not at the short grace, soon after the long one
    assert proc.wait(timeout=10) in (0, -signal.SIGKILL)
    verdict = json.loads((run_dir / "watchdog.verdict").read_text())
    assert verdict["reason"] == "idle_between_jobs"
    assert verdict["detail"].startswith("setup ended, train never started; nobody followed")
    assert _terminated_by(runpod_account, pod_id) == "pod:rest"


def test_a_model_that_could_not_be_pushed_holds_the_pod_for_the_push_hold(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    """train.sh's exit 75 with push.held: the pod holds the only copy of the model, so it is
    kept past the grace (nobody follows: the run already failed) until the push hold."""
    pod_id = _pod(runpod_account)
    run_dir = _run_dir(tmp_path, grace_s=0.3, push_hold_s=2.5)
    _finished(run_dir, 75)
    (run_dir / "push.held").write_text("{}")
    proc = _start(run_dir, runpod_account, pod_id)
    took = _gone_within(runpod_account, pod_id, 15)
    assert 2.4 <= took < 6.5  # not at the grace, soon after the hold
    assert proc.wait(timeout=10) in (0, -signal.SIGKILL)
    verdict = json.loads((run_dir / "watchdog.verdict").read_text())
    assert verdict["reason"] == "push_hold_ended", verdict


def test_between_jobs_is_only_a_finished_job_whose_successor_never_started(
    tmp_path: Path,
) -> None:
    watchdog = _load_script()
    run_dir = _run_dir(tmp_path, chain=["setup", "train", "merge"])
    chain = ["setup", "train", "merge"]
    (run_dir / "setup.started").mkdir()
    (run_dir / "setup.pid").write_text(f"{os.getpid()}\n")
    assert watchdog.idle_between_jobs(str(run_dir), chain) is None  # setup runs
    (run_dir / "setup.exit").write_text("0\n")
    ended, what = watchdog.idle_between_jobs(str(run_dir), chain)
    assert what == "setup ended, train never started"
    assert ended == (run_dir / "setup.exit").stat().st_mtime
    (run_dir / "train.started").mkdir()
    assert watchdog.idle_between_jobs(str(run_dir), chain) is None  # train runs
    (run_dir / "train.exit").write_text("0\n")
    assert watchdog.idle_between_jobs(str(run_dir), chain)[1] == "train ended, merge never started"
    (run_dir / "train.exit").write_text("1\n")  # a failure is the chain's end, not a gap
    assert watchdog.idle_between_jobs(str(run_dir), chain) is None
    assert watchdog.chain_end(str(run_dir), chain)[1] == "train failed (exit 1)"
    assert watchdog.idle_between_jobs(str(run_dir), ["train"]) is None  # nothing follows


def test_a_heartbeat_holds_a_pod_idle_between_jobs(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    """A live orchestrator between setup and training (it touches the heartbeat) keeps it."""
    pod_id = _pod(runpod_account)
    run_dir = _run_dir(tmp_path, chain=["setup", "train"], grace_s=0.2, orphan_grace_s=0.8)
    _finished(run_dir, 0, "setup")
    heartbeat = run_dir / "watchdog.heartbeat"
    proc = _start(run_dir, runpod_account, pod_id)
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        heartbeat.write_text(f"{time.time()}\n")
        assert runpod_account.pod(pod_id) is not None
        time.sleep(0.1)
    _gone_within(runpod_account, pod_id, 15)  # once nobody follows, the orphan grace runs out
    assert proc.wait(timeout=10) in (0, -signal.SIGKILL)


def _wait_for_lock(path: Path, seconds: float = 10.0) -> None:
    """Until another process holds ``path``'s flock (the watchdog takes it at start)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.exists():
            with open(path, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
                fcntl.flock(handle, fcntl.LOCK_UN)
        time.sleep(0.02)
    raise AssertionError(f"nobody took {path}")


def _terminated_by(fake: FakeRunpod, pod_id: str) -> str | None:
    return next(e.terminated_by for e in fake.ledger() if e.pod_id == pod_id)


def test_a_following_heartbeat_holds_the_watchdog_and_one_instance_runs(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    pod_id = _pod(runpod_account)
    run_dir = _run_dir(tmp_path)
    _finished(run_dir, 1)
    heartbeat = run_dir / "watchdog.heartbeat"
    following = threading.Event()

    def follow() -> None:  # a follower touches it (as thinnka does over SFTP)
        while not following.is_set():
            heartbeat.write_text(f"{time.time()}\n")
            time.sleep(0.1)

    follower = threading.Thread(target=follow, daemon=True)
    heartbeat.write_text(f"{time.time()}\n")
    follower.start()
    try:
        proc = _start(run_dir, runpod_account, pod_id)
        _wait_for_lock(run_dir / "watchdog.lock")  # the first instance holds it
        second = _start(run_dir, runpod_account, pod_id)
        assert second.wait(timeout=10) == 0  # the lock is held: it leaves at once
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            assert runpod_account.pod(pod_id) is not None
            time.sleep(0.2)
    finally:
        following.set()
        follower.join()
    _gone_within(runpod_account, pod_id, 15)  # once nobody follows, the grace runs out
    assert proc.wait(timeout=10) in (0, -signal.SIGKILL)
    assert json.loads((run_dir / "watchdog.verdict").read_text())["reason"] == "job_failed"


def test_watchdog_stops_the_job_and_terminates_at_the_deadline(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    pod_id = _pod(runpod_account)
    run_dir = _run_dir(tmp_path, grace_s=600, max_hours=1.0, pod_started_epoch=time.time() - 3599)
    (run_dir / "train.started").mkdir()
    job = subprocess.Popen(["sleep", "300"], start_new_session=True)
    (run_dir / "train.pid").write_text(f"{job.pid}\n")
    (run_dir / "watchdog.heartbeat").write_text("attached\n")  # whoever is attached
    proc = _start(run_dir, runpod_account, pod_id)
    _gone_within(runpod_account, pod_id, 15)
    assert job.wait(timeout=15) == -signal.SIGTERM
    assert proc.wait(timeout=10) in (0, -signal.SIGKILL)
    assert json.loads((run_dir / "watchdog.verdict").read_text())["reason"] == "max_duration"


def test_watchdog_falls_back_to_graphql_when_rest_refuses(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    pod_id = _pod(runpod_account)
    run_dir = _run_dir(tmp_path, grace_s=0.2)
    _finished(run_dir, 0)
    runpod_account.inject_faults(status=403, match="DELETE /v2/pods")
    proc = _start(run_dir, runpod_account, pod_id)
    _gone_within(runpod_account, pod_id, 10)
    assert proc.wait(timeout=10) in (0, -signal.SIGKILL)
    log = proc.stdout.read() if proc.stdout else ""
    assert "REST DELETE: attempt 1 failed (HTTP 403)" in log
    assert _terminated_by(runpod_account, pod_id) == "pod:graphql"


@pytest.mark.parametrize(
    ("max_hours", "max_cost", "price", "reason"),
    [(2.0, None, 1.0, "max_duration"), (10.0, 3.0, 1.5, "max_cost"), (None, 50.0, 0.5, None)],
)
def test_watchdog_and_orchestrator_agree_on_the_deadline(
    max_hours: float | None, max_cost: float | None, price: float, reason: str | None
) -> None:
    started = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    options = RunOptions(repo_id="a/b", max_hours=max_hours, max_cost=max_cost, max_steps=100)
    limit = run_limit(options, started, price)
    assert limit is not None
    from thinnka.options.limits import max_hours_for

    config = {
        "pod_started_epoch": started.timestamp(),
        "max_hours": max_hours_for(options)[0],
        "max_cost": max_cost,
        "cost_per_hr": price,
    }
    epoch, why = _load_script().deadline(config)
    assert abs(epoch - limit.at.timestamp()) < 1e-6 and why == limit.reason
    if reason is not None:
        assert why == reason
    if limit.reason == "max_cost":
        assert price * (limit.at - started).total_seconds() / 3600 < max_cost  # stops before it


def test_the_default_max_hours_comes_from_the_plan() -> None:
    from thinnka.options.limits import default_max_hours, limits_json

    assert default_max_hours(RunOptions(repo_id="a/b", sft=True, max_steps=100)) == 2.0  # floor
    grpo = RunOptions(repo_id="a/b", max_steps=600)
    assert default_max_hours(grpo) == 1 + 600 * 60 / 3600
    assert default_max_hours(RunOptions(repo_id="a/b", max_steps=100000)) == 72.0  # ceiling
    assert default_max_hours(RunOptions(repo_id="a/b")) == 24.0  # epochs: no step count
    shown = limits_json(RunOptions(repo_id="a/b", max_hours=3, max_cost=9.5))
    assert shown == {"max_hours": 3, "max_hours_source": "--max-hours", "max_cost": 9.5,
                     "watchdog_grace_s": 120.0, "watchdog_orphan_grace_s": 600.0}  # fmt: skip


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--max-cost", "0", "--max-cost must be"), ("--watchdog-grace", "0.5", "--watchdog-grace")],
)
def test_bad_limits_are_refused_before_anything_exists(
    workdir: Path, flag: str, value: str, message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "thinnka", "run", "--repo-id", "a/b", flag, value],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr
    listed = subprocess.run([sys.executable, "-m", "thinnka", "ls", "--all", "--json"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert json.loads(listed.stdout) == []  # no row was made


def test_a_cluster_node_deletes_the_cluster_and_leaves_rank_0_its_push(
    runpod_account: FakeRunpod, tmp_path: Path
) -> None:
    """A node other than rank 0 whose part of the training ended well waits the push hold,
    not the grace (rank 0 may still push); then it deletes the whole cluster."""
    headers = {"Authorization": f"Bearer {runpod_account.api_key}"}
    body = {"name": "thinnka-test-2x-r-abc123", "type": "TRAINING", "image": "runpod/pytorch:t",
            "compute": {"gpuTypeId": "NVIDIA H100 80GB HBM3", "gpuCountPerPod": 8,
                        "podCount": 2}}  # fmt: skip
    with httpx.Client(base_url=runpod_account.rest_url, headers=headers) as v2:
        cluster = v2.post("/clusters", json=body).json()["id"]
        pods = v2.get(f"/clusters/{cluster}/pods").json()["pods"]
    members = [p["id"] for p in sorted(pods, key=lambda p: p["cluster"]["rank"])]
    run_dir = _run_dir(tmp_path, cluster_id=cluster, node_rank=1, grace_s=0.3, push_hold_s=2.5)
    _finished(run_dir, 0)
    proc = _start(run_dir, runpod_account, members[1])
    took = _gone_within(runpod_account, members[0], 15)
    assert 2.4 <= took < 6.5, took  # not at the grace: rank 0 had the push hold to finish
    assert runpod_account.pod(members[1]) is None
    assert proc.wait(timeout=10) in (0, -signal.SIGKILL)
    assert {_terminated_by(runpod_account, p) for p in members} == {"pod:cluster"}
    assert json.loads((run_dir / "watchdog.verdict").read_text())["reason"] == "succeeded"
