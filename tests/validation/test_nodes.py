"""``--nodes``: ``plan`` shows the Instant Cluster, and what cannot run on one exits 2 before
anything exists (issue 23). Through the CLI in this process, against the emulated Hub and
Runpod (whose catalog answers ``product=CLUSTER``)."""

from __future__ import annotations

import json

import pytest

from tests.validation.conftest import PlanWorld
from tests.validation.test_cases import _refused

NODES = ["--nodes", "2", "--gpu-count", "8"]


def test_plan_shows_the_cluster_its_price_and_the_per_gpu_figure(plan_world: PlanWorld) -> None:
    result = plan_world.cli("plan", "--json", "--repo-id", plan_world.model, "--sft", *NODES)
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    cluster = plan["cluster"]
    assert (cluster["nodes"], cluster["gpus_per_node"], cluster["total_gpus"]) == (2, 8, 16)
    # Only what Runpod sells as clusters: the emulator's A100 SXM, H100 SXM, H200.
    assert {c["id"] for c in plan["candidates"]} <= {
        "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA H200"
    }  # fmt: skip
    first = plan["candidates"][0]
    assert cluster["gpu"] == first["id"] == "NVIDIA A100-SXM4-80GB"  # the priority family
    assert cluster["price_per_hour"] == pytest.approx(first["price_per_hour"] * 2)
    assert plan["training"]["zero_stage"] == 3 and plan["training"]["nodes"] == 2
    assert plan["training"]["processes"] == 16 and plan["accelerate"]["num_processes"] == 16
    plan_world.assert_nothing_created()

    text = plan_world.cli("plan", "--repo-id", plan_world.model, "--sft", *NODES)
    assert text.code == 0, text.err
    assert "cluster  2 nodes × 8× A100 SXM (16 GPUs), $27.84/h for all of it" in text.out
    assert "for all of it; ZeRO-3 over 16 GPUs needs" in text.out


def test_nodes_with_graphql_exit_2(plan_world: PlanWorld) -> None:
    plan_world.write_dotenv(THINNKA_RUNPOD_API="graphql")
    _refused(plan_world, NODES, "--nodes needs Runpod's REST v2 API")


def test_nodes_with_a_gpu_type_no_cluster_offers_exit_2(plan_world: PlanWorld) -> None:
    _refused(plan_world, [*NODES, "--gpu-type", "L40S"], "No Instant Cluster of 2 nodes is left")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "2"], "pass --gpu-count 8 with --nodes"),
        (["--nodes", "9", "--gpu-count", "8"], "--nodes must be 2 to 8"),
        ([*NODES, "--network-volume", "vol-1"], "--network-volume attaches one volume"),
    ],
)
def test_what_no_cluster_can_run_exits_2(
    plan_world: PlanWorld, args: list[str], message: str
) -> None:
    _refused(plan_world, args, message)


def test_a_4bit_base_on_nodes_is_refused_by_plan_and_run(plan_world: PlanWorld) -> None:
    # `run` met this in its estimate step, after its row existed (exit 1): now before it.
    _refused(plan_world, [*NODES, "--set", "load_in_4bit=true"], "--nodes means ZeRO-3")
