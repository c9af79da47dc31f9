"""``--nodes 2``: a real two-node training on an emulated Instant Cluster (issue 23).

Two emulated nodes, each its own sshd and its own ``/workspace`` (a mount namespace:
``tests/world/cluster_nodes.py``), rendezvous over 127.0.0.1 as ``MASTER_ADDR`` says.
torch.distributed on CPU (gloo) joins one process per node, launched by each node's
rendered accelerate config; the tiny model is fine-tuned (SFT) and pushed by rank 0 alone.
What only a real cluster could show (NCCL over InfiniBand on ``ens1``, ZeRO-3 across GPUs)
is out of reach here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_operations import _installation_id
from tests.e2e.test_pipeline import CPU, _run_id
from tests.e2e.test_store_failure import fill, small_tmpfs, wait_for
from tests.plugins.thinnka_world import World
from thinnka.handlers.push import RUN_MARKER

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

A100_SXM = "NVIDIA A100-SXM4-80GB"  # the first cluster candidate (priority family)


def test_two_nodes_train_in_one_process_group_and_push_once(
    world: World, cluster_nodes: Any
) -> None:
    nodes = cluster_nodes(world.remote_root, 2)
    result = world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "2",
        "--dataset-name", world.hub.datasets.sft, "--nodes", "2", "--gpu-count", "8", *CPU,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_id = _run_id(result.stdout)
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded"), shown["error"]

    # One cluster of two nodes, created once, deleted as a whole; the run names both.
    assert [n["rank"] for n in shown["cluster"]["nodes"]] == [0, 1]
    assert shown["cluster"]["nodes"][0]["pod_id"] == shown["pod_id"]
    ledger = world.runpod.ledger()
    assert len(ledger) == 2 and {e.terminated_by for e in ledger} == {"cluster"}
    assert all(e.gpu_type_id == A100_SXM for e in ledger)
    clusters = [
        r for r in world.runpod.requests() if r.method == "POST" and r.path == "/v2/clusters"
    ]
    assert len(clusters) == 1
    # Both nodes trained in one process group: each node's own log says so.
    assert "thinnka: process 0 of world size 2" in result.stdout
    state = world.workdir / "state" / "runs" / run_id
    node1 = (state / "node1-train.log").read_text()
    assert "thinnka: process 1 of world size 2" in node1
    # Each node worked in its own folder under the same path.
    for rank, node in enumerate(nodes):
        config = (node.own_root / "thinnka" / run_id / "accelerate.yaml").read_text()
        assert f"machine_rank: {rank}" in config and "num_machines: 2" in config
    assert not (world.remote_root / "thinnka" / run_id).exists()

    # Exactly one push: rank 0's, recorded once.
    summaries = [c.summary for c in world.hub.commits(shown["hub_model_id"])]
    assert summaries.count("End of training") == 1
    assert summaries.count(f"thinnka: final push of run {run_id}") == 1
    marker = json.loads(world.hub.files(shown["hub_model_id"])[RUN_MARKER])
    assert marker["run_id"] == run_id

    # The cost counts both nodes: the run's price is the cluster's.
    node_price = 1.74 * 8  # the emulator's A100 SXM list price per GPU, 8 GPUs a node
    assert shown["cost_per_hr"] == pytest.approx(2 * node_price)
    assert shown["cost_basis"] == "billed"  # /v2/billing/clusters: both nodes' records
    assert shown["cost_usd"] == pytest.approx(sum(e.cost for e in ledger), rel=0.01)


def _create_cluster(world: World, env: dict[str, str], gpu: str = A100_SXM) -> list[str]:
    """A cluster made elsewhere (another process, another installation): its member pod ids."""
    headers = {"Authorization": f"Bearer {world.runpod.api_key}"}
    body = {"name": f"thinnka-x-{env.get('THINNKA_RUN_ID', 'none')}", "type": "TRAINING",
            "compute": {"gpuTypeId": gpu, "gpuCountPerPod": 8, "podCount": 2},
            "image": "runpod/pytorch:test", "ports": ["22/tcp"], "env": env}  # fmt: skip
    with httpx.Client(base_url=world.runpod.rest_url, headers=headers, trust_env=False) as v2:
        created = v2.post("/clusters", json=body)
        assert created.status_code == 201, created.text
        pods = v2.get(f"/clusters/{created.json()['id']}/pods").json()["pods"]
    return [p["id"] for p in pods]


def test_reap_deletes_an_orphaned_cluster_and_never_a_foreign_one(world: World) -> None:
    assert world.thinnka("ls").returncode == 0  # makes the database and installation id
    ours = _installation_id(world)
    orphan = _create_cluster(
        world, {"THINNKA_OWNER": ours, "THINNKA_RUN_ID": "r-zzzzzz", "THINNKA_MAX_HOURS": "1"}
    )
    theirs = {"THINNKA_OWNER": "inst-other", "THINNKA_RUN_ID": "r-y"}
    foreign = _create_cluster(world, theirs, "NVIDIA H100 80GB HBM3")
    young = world.thinnka("reap", "--dry-run")
    assert young.returncode == 0 and f"kept {orphan[0]}" in young.stdout, young.stdout
    world.runpod.advance_time(3600 + 16 * 60)  # past the unknown run's own bound
    reaped = world.thinnka("reap")
    assert reaped.returncode == 0, reaped.stderr[-2000:]
    assert all(f"terminated {pod}" in reaped.stdout for pod in orphan), reaped.stdout
    gone = {e.pod_id: e.terminated_by for e in world.runpod.ledger() if e.terminated}
    assert gone == dict.fromkeys(orphan, "cluster")  # one cluster delete; the foreign one stays
    assert not set(foreign) & set(gone)


def test_orchestrator_gone_during_training_the_watchdog_deletes_the_cluster(
    world: World, cluster_nodes: Any
) -> None:
    cluster_nodes(world.remote_root, 2)
    result = world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "2", "--detach",
        "--watchdog-grace", "2", "--dataset-name", world.hub.datasets.sft,
        "--nodes", "2", "--gpu-count", "8", *CPU,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_id = _run_id(result.stdout)
    # Nobody follows: once the training ended, rank 0's watchdog deletes the whole cluster
    # with its pod-scoped key (its own pod alone would be refused).
    deadline = time.monotonic() + 240
    while not all(e.terminated for e in world.runpod.ledger()):
        assert time.monotonic() < deadline, "the watchdog did not delete the cluster"
        time.sleep(1)
    assert {e.terminated_by for e in world.runpod.ledger()} == {"pod:cluster"}
    recovered = world.thinnka("recover", "--json")
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded"), shown["error"]
    summaries = [c.summary for c in world.hub.commits(shown["hub_model_id"])]
    assert summaries.count(f"thinnka: final push of run {run_id}") == 1


def test_a_lost_node_fails_the_run_and_the_cluster_is_deleted(
    world: World, cluster_nodes: Any
) -> None:
    nodes = cluster_nodes(world.remote_root, 2)
    proc = world.spawn(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "400",
        "--dataset-name", world.hub.datasets.sft, "--nodes", "2", "--gpu-count", "8", *CPU,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        logs = list((nodes[1].own_root / "thinnka").glob("r-*/train.log"))
        while not logs or "world size 2" not in logs[0].read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, "training never started"
            time.sleep(0.5)
            logs = list((nodes[1].own_root / "thinnka").glob("r-*/train.log"))
        node1 = next(p.id for p in world.runpod.pods() if p.ssh_port == nodes[1].port)
        world.runpod.kill_pod(node1)  # the host of node 1 fails: its processes die with it
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-2000:] + err[-2000:]
    shown = world.show(_run_id(out))
    assert (shown["outcome"], shown["error"]["reason"]) == ("failed", "pod_lost"), shown["error"]
    assert f"node 1 (pod {node1}) of the cluster was lost" in shown["error"]["message"]
    assert {e.terminated_by for e in world.runpod.ledger()} == {"cluster"}  # one delete, both


def test_rank_0_lost_while_nobody_follows_another_nodes_watchdog_deletes_the_cluster(
    world: World, cluster_nodes: Any
) -> None:
    """Every node has a watchdog of its own: rank 0's host fails with nobody following (its
    watchdog dies with it), node 1's training fails with the process group, and node 1's
    watchdog deletes the whole cluster with its own pod-scoped key."""
    nodes = cluster_nodes(world.remote_root, 2)
    result = world.thinnka(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "400", "--detach",
        "--watchdog-grace", "2", "--dataset-name", world.hub.datasets.sft,
        "--nodes", "2", "--gpu-count", "8", *CPU,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_id = _run_id(result.stdout)
    node1_dir = nodes[1].own_root / "thinnka" / run_id
    deadline = time.monotonic() + 300
    while "world size 2" not in _text(node1_dir / "train.log"):
        assert time.monotonic() < deadline, "training never started on node 1"
        time.sleep(0.5)
    assert json.loads((node1_dir / "watchdog.json").read_text())["node_rank"] == 1
    rank0 = world.show(run_id)["pod_id"]
    world.runpod.kill_pod(rank0)  # rank 0's host fails: its trainer and watchdog die
    while not all(e.terminated for e in world.runpod.ledger()):
        assert time.monotonic() < deadline, "no node's watchdog deleted the cluster"
        time.sleep(1)
    assert {e.terminated_by for e in world.runpod.ledger()} == {"pod:cluster"}
    verdict = json.loads((node1_dir / "watchdog.verdict").read_text())
    assert verdict["reason"] == "job_failed", verdict
    assert not (nodes[0].own_root / "thinnka" / run_id / "watchdog.verdict").exists()


def _text(path: Any) -> str:
    try:
        return str(path.read_text(errors="replace"))
    except OSError:
        return ""


def test_the_database_fails_as_the_cluster_is_created_the_cluster_is_deleted(
    world: World, tmp_path: Path
) -> None:
    """The state folder fills up while Runpod creates the cluster: its id cannot be recorded,
    only thinnka's memory has it, and its member pods cannot be terminated one by one."""
    with small_tmpfs(tmp_path / "state", "16m") as state:
        world.write_dotenv(THINNKA_STATE_DIR=str(state))
        world.runpod.inject_faults(delay=3.0, match="POST /v2/clusters", after=True)
        proc = world.spawn(
            "run", "--repo-id", world.hub.models.chat, "--sft", "--dataset-name",
            world.hub.datasets.sft, "--nodes", "2", "--gpu-count", "8", *CPU,
        )  # fmt: skip
        wait_for("the cluster", lambda: len(world.runpod.pods()) == 2, 120)
        members = {pod.id for pod in world.runpod.pods()}
        fill(state)
        _, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert "database or disk is full" in last and "could not be terminated" not in last, last
    assert all(pod in last for pod in members), last
    assert world.runpod.pods() == []  # gone before thinnka exited
    assert {e.pod_id: e.terminated_by for e in world.runpod.ledger()} == dict.fromkeys(
        members, "cluster"
    )


def test_the_orchestrator_killed_during_cluster_training_resume_finishes_the_run(
    world: World, cluster_nodes: Any
) -> None:
    """kill -9 while both nodes train: ``resume`` re-attaches to rank 0's training (every
    node's key pinned, every node's heartbeat kept), and the run ends as one run should: one
    cluster created, deleted whole, one final push."""
    nodes = cluster_nodes(world.remote_root, 2)
    proc = world.spawn(
        "run", "--repo-id", world.hub.models.chat, "--sft", "--max-steps", "10",
        "--dataset-name", world.hub.datasets.sft, "--nodes", "2", "--gpu-count", "8", *CPU,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        logs: list[Path] = []
        while not logs or "world size 2" not in _text(logs[0]):
            assert proc.poll() is None and time.monotonic() < deadline, "training never started"
            time.sleep(0.2)
            logs = list((nodes[0].own_root / "thinnka").glob("r-*/train.log"))
        proc.kill()  # kill -9: no cleanup of any kind
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_id = logs[0].parent.name
    assert not (logs[0].parent / "train.exit").exists()  # killed while the nodes trained
    resumed = world.thinnka("resume", run_id)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "succeeded"), shown["error"]
    creates = [r for r in world.runpod.requests() if (r.method, r.path) == ("POST", "/v2/clusters")]
    assert len(creates) == 1
    ledger = world.runpod.ledger()
    assert len(ledger) == 2 and {e.terminated_by for e in ledger} == {"cluster"}
    summaries = [c.summary for c in world.hub.commits(shown["hub_model_id"])]
    assert summaries.count(f"thinnka: final push of run {run_id}") == 1
    assert "process 1 of world size 2" in (world.workdir / "state" / "runs" / run_id /
                                            "node1-train.log").read_text()  # fmt: skip
