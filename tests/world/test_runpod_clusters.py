"""The emulator's Instant Clusters (``/v2/clusters``) over raw HTTP (docs/runpod.md,
"Instant Clusters"), so that thinnka's own client cannot hide a mistake in either."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.world._runpod_records import NO_CAPACITY
from tests.world.runpod import FakeRunpod
from tests.world.sshd import generate_key

pytestmark = pytest.mark.timeout(60)

H100 = "NVIDIA H100 80GB HBM3"
BODY: dict[str, Any] = {
    "name": "thinnka-cluster",
    "type": "TRAINING",
    "compute": {"gpuTypeId": H100, "gpuCountPerPod": 8, "podCount": 2},
    "image": "runpod/pytorch:test",
    "ports": ["22/tcp"],
    "startSsh": True,
    "env": {"THINNKA_RUN_ID": "r-c1"},
}


def test_create_lists_members_with_ranks_and_deletes_them_all(
    v2: httpx.Client, runpod_account: FakeRunpod
) -> None:
    created = v2.post("/clusters", json=BODY)
    assert created.status_code == 201, created.text
    cluster = created.json()
    assert cluster["pods"]["total"] == 2 and cluster["type"] == "TRAINING"
    members = v2.get(f"/clusters/{cluster['id']}/pods").json()["pods"]
    assert [m["cluster"]["rank"] for m in members] == [0, 1]
    assert {m["cluster"]["id"] for m in members} == {cluster["id"]}
    assert members[0]["env"]["THINNKA_RUN_ID"] == "r-c1"  # the body's env on every node
    assert cluster["primary"]["podId"] == members[0]["id"]

    # Members are hidden from the pod list unless asked for, and not deletable one by one.
    assert v2.get("/pods").json()["pods"] == []
    listed = v2.get("/pods", params={"includeClusterPods": "true"}).json()["pods"]
    assert {p["id"] for p in listed} == {m["id"] for m in members}
    refused = v2.delete(f"/pods/{members[1]['id']}")
    assert refused.status_code == 409, refused.text
    assert v2.get(f"/pods/{members[1]['id']}").json()["cluster"]["rank"] == 1

    assert v2.delete(f"/clusters/{cluster['id']}").status_code == 204
    assert v2.get(f"/clusters/{cluster['id']}").status_code == 404
    assert v2.delete(f"/clusters/{cluster['id']}").status_code == 404
    assert all(v2.get(f"/pods/{m['id']}").status_code == 404 for m in members)
    assert {e.terminated_by for e in runpod_account.ledger()} == {"cluster"}


def test_every_node_gets_runpods_cluster_env(runpod_account: FakeRunpod, v2: httpx.Client) -> None:
    from tests.world._runpod_podkeys import pod_env

    cluster = v2.post("/clusters", json=BODY).json()
    members = v2.get(f"/clusters/{cluster['id']}/pods").json()["pods"]
    envs = [pod_env(runpod_account.world, m["id"]) for m in members]
    for rank, env in enumerate(envs):
        assert env["NODE_RANK"] == str(rank)
        assert (env["NUM_NODES"], env["NUM_TRAINERS"], env["WORLD_SIZE"]) == ("2", "8", "16")
        assert env["MASTER_ADDR"] == env["PRIMARY_ADDR"] == "127.0.0.1"
        assert env["MASTER_PORT"] == envs[0]["MASTER_PORT"] and env["MASTER_PORT"].isdigit()


def test_no_half_cluster_and_only_cluster_gpu_types(
    v2: httpx.Client, runpod_account: FakeRunpod
) -> None:
    # The fake's H200 stock holds one node of 8, not two: no capacity, and no pod left.
    h200 = {**BODY, "compute": {**BODY["compute"], "gpuTypeId": "NVIDIA H200"}}
    refused = v2.post("/clusters", json=h200)
    assert (refused.status_code, refused.json()["detail"]) == (400, NO_CAPACITY)
    l40s = {**BODY, "compute": {**BODY["compute"], "gpuTypeId": "NVIDIA L40S"}}
    assert v2.post("/clusters", json=l40s).status_code == 400
    assert runpod_account.ledger() == []
    catalog = v2.get("/catalog/gpus", params={"include": "AVAILABILITY", "product": "CLUSTER",
                                              "count": 8})  # fmt: skip
    ids = {g["id"] for g in catalog.json()["gpus"]}
    assert H100 in ids and "NVIDIA L40S" not in ids


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"cloud": "SECURE"}, "additional properties 'cloud' not allowed"),
        ({"registry": "r1"}, "additional properties 'registry' not allowed"),
        ({"compute": {**BODY["compute"], "podCount": 1}}, "podCount: value must be between 2"),
        ({"type": "BATCH"}, "$.type: value must be one of"),
    ],
)
def test_the_create_body_is_closed(v2: httpx.Client, changes: dict[str, Any], error: str) -> None:
    refused = v2.post("/clusters", json={**BODY, **changes})
    assert refused.status_code == 422
    assert any(error in e for e in refused.json()["errors"]), refused.json()


def test_each_node_has_its_own_sshd_env_and_root(
    v2: httpx.Client, runpod_account: FakeRunpod, cluster_nodes: Any, tmp_path: Path
) -> None:
    shared = tmp_path / "workspace"  # what thinnka is told the nodes' root is
    shared.mkdir()
    nodes = cluster_nodes(shared, 2)
    key = generate_key(tmp_path / "id_node", "thinnka-node-test")
    runpod_account.advance_time(5)
    body = {**BODY, "env": {**BODY["env"], "PUBLIC_KEY": key.public_key}}
    cluster = v2.post("/clusters", json=body).json()
    runpod_account.advance_time(5)
    members = v2.get(f"/clusters/{cluster['id']}/pods").json()["pods"]
    ports = [m["ssh"]["direct"]["port"] for m in members]
    assert ports == [n.port for n in nodes]

    def on_node(rank: int, script: str) -> str:
        argv = nodes[rank].ssh_command(script, key=key.private_key_path)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    for rank in (0, 1):
        said = on_node(
            rank, f'echo "$NODE_RANK $NUM_NODES $RUNPOD_POD_ID" > {shared}/me; cat {shared}/me'
        )
        assert said == f"{rank} 2 {members[rank]['id']}"
    # Same path on both nodes, two folders: neither node sees the other's file.
    assert (tmp_path / "node0-root" / "me").read_text().startswith("0 ")
    assert (tmp_path / "node1-root" / "me").read_text().startswith("1 ")
    assert not (shared / "me").exists()
