"""thinnka's Instant Cluster client (``clients/runpod/clusters.py``) against the emulator, and
the plan's "how many nodes would" answer, read from the emulated catalog (issue 23)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from tests.planning.test_cluster import LLAMA_70B_CONFIG, LLAMA_70B_PARAMS
from tests.world.runpod import FakeRunpod
from thinnka.clients.runpod.clusters import ClusterSpec, RestClusters, cluster_body
from thinnka.clients.runpod.rest import RestRunpod
from thinnka.errors import CapacityError, NotFoundError, PreflightError, RemoteError
from thinnka.options import RunOptions, validate
from thinnka.planning.facts import GateFacts
from thinnka.preflight import choose_candidates, memory_estimate

H100 = "NVIDIA H100 80GB HBM3"
SPEC = ClusterSpec(
    name="thinnka-llama-2n-r-c1", image="runpod/pytorch:test", gpu_type_id=H100,
    gpu_count_per_pod=8, pod_count=2, container_disk_gb=50, volume_gb=200,
    env={"THINNKA_RUN_ID": "r-c1"}, start_command="sh -c 'exec /start.sh'",
)  # fmt: skip


@pytest.fixture
def api(runpod_account: FakeRunpod) -> RestRunpod:
    return RestRunpod(runpod_account.base_url, runpod_account.api_key, backoff_max=0.05)


def test_the_body_is_what_runpod_takes() -> None:
    body = cluster_body(SPEC)
    assert body["type"] == "TRAINING" and "cloud" not in body and "registry" not in body
    assert body["compute"] == {"gpuTypeId": H100, "gpuCountPerPod": 8, "podCount": 2}
    assert body["ports"] == ["22/tcp"] and body["startSsh"] is True
    assert body["mounts"] == {"persistent": {"size": 200, "path": "/workspace"}}
    assert body["args"] == SPEC.start_command


def test_create_read_nodes_bill_delete(api: RestRunpod, runpod_account: FakeRunpod) -> None:
    clusters = RestClusters(api)
    made = clusters.create_cluster(SPEC)
    assert made.pod_total == 2 and made.name == SPEC.name
    nodes = clusters.nodes(made.id)
    assert [n.rank for n in nodes] == [0, 1] and nodes[0].pod.id == made.primary_pod_id
    assert all(n.pod.gpu_type_id == H100 and n.pod.gpu_count == 8 for n in nodes)
    assert api.list_pods() == []  # members are not pods of the account's list
    with pytest.raises(RemoteError, match="HTTP 409"):
        api.terminate_pod(nodes[1].pod.id)
    runpod_account.advance_time(3600)
    assert [c.id for c in clusters.list_clusters()] == [made.id]
    billed = clusters.billed_cost(made.id)
    assert billed is not None and billed > 0  # both nodes' hour
    clusters.delete_cluster(made.id)
    assert clusters.get_cluster(made.id) is None and clusters.nodes(made.id) == []
    with pytest.raises(NotFoundError):
        clusters.delete_cluster(made.id)


def test_no_capacity_is_a_capacity_error(api: RestRunpod, runpod_account: FakeRunpod) -> None:
    with pytest.raises(CapacityError):
        RestClusters(api).create_cluster(dataclasses.replace(SPEC, gpu_type_id="NVIDIA H200"))
    assert runpod_account.ledger() == []


def test_cluster_offers_are_the_cluster_catalog(api: RestRunpod) -> None:
    offers = {o.id: o for o in RestClusters(api).cluster_offers(8)}
    assert set(offers) == {"NVIDIA A100-SXM4-80GB", H100, "NVIDIA H200"}
    assert offers[H100].gpu_count == 8 and offers[H100].price_per_hour == pytest.approx(2.69 * 8)


def test_a_model_no_pod_holds_is_refused_with_the_nodes_that_would(api: RestRunpod) -> None:
    gate = GateFacts(
        repo_id="meta-llama/Llama-3.1-70B", hub_model_id="me/llama-70b", user="me", gated=False,
        has_chat_template=True, system_role_supported=True, transformers_version="4.43.0",
        model_type="llama", files=[], safetensors_total=LLAMA_70B_PARAMS,
        safetensors_parameters={"BF16": LLAMA_70B_PARAMS}, config=LLAMA_70B_CONFIG,
    )  # fmt: skip
    services = SimpleNamespace(runpod=api)
    options = validate(RunOptions(repo_id=gate.repo_id, sft=True, shard_model=True, gpu_count=8))
    need = memory_estimate(options, gate)
    with pytest.raises(PreflightError) as refused:
        choose_candidates(services, options, gate, need)  # type: ignore[arg-type]
    message = refused.value.message
    assert "No GPU with at least 190.8 GB fits" in message
    assert "--nodes 2 --gpu-count 8 needs 102.6 GB per GPU (H200 SXM has 141 GB)" in message
    assert "SFT, full fine-tuning, ZeRO-3, 16 training processes, on 2 nodes" in message

    # And that plan, asked for, is the H200 cluster.
    nodes = validate(dataclasses.replace(options, nodes=2, shard_model=False))
    choice = choose_candidates(services, nodes, gate, memory_estimate(nodes, gate))  # type: ignore[arg-type]
    assert [c.label for c in choice.clusters] == ["2 nodes × 8× H200 SXM"]
