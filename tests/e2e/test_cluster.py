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
from typing import Any

import pytest

from tests.e2e.test_pipeline import CPU, _run_id
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

    # One cluster of two nodes, created once, deleted as a whole.
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
    assert shown["cost_usd"] > 0
