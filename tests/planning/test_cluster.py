"""``--nodes``: an Instant Cluster planned for a model no pod holds (issue 23).

The model is Llama 3 70B (its config.json and Hub parameter count): a full fine-tune under
ZeRO-3 needs about 190 GB per GPU on one pod of 8 GPUs (no GPU has it), about 103 GB over
2 nodes × 8 (an H200 holds it) and about 59 GB over 4 (an H100 holds it).
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.planning.test_gpus import catalog
from thinnka.errors import ConfigError, PreflightError, RefusedChoice
from thinnka.options import RunOptions, validate
from thinnka.planning.cluster import choose_cluster, nodes_needed
from thinnka.planning.facts import ModelContext
from thinnka.planning.gpus import choose
from thinnka.planning.stacks import stack_for
from thinnka.planning.training import TrainingPlan, plan_training
from thinnka.planning.vram import ModelFacts, estimate, shape_for

LLAMA_70B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "model_type": "llama",
    "num_attention_heads": 64,
    "num_hidden_layers": 80,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}
LLAMA_70B_PARAMS = 70_553_706_496
LLAMA_70B = ModelFacts.from_hub(LLAMA_70B_PARAMS, {"BF16": LLAMA_70B_PARAMS}, [], LLAMA_70B_CONFIG)
MODEL = ModelContext(hub_model_id="me/out", has_chat_template=True)
# What Runpod sells as clusters: data-center cards, nodes of 8.
CLUSTER_TYPES = ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA B200")


def cluster_catalog(**changes: dict[str, object]) -> list:  # type: ignore[type-arg]
    offers = [o for o in catalog(8) if o.id in CLUSTER_TYPES]
    return [dataclasses.replace(o, **changes.get(o.display_name, {})) for o in offers]  # type: ignore[arg-type]


def plan(**changes: object) -> TrainingPlan:
    return plan_training(validate(RunOptions(**changes)), MODEL)  # type: ignore[arg-type]


def need_gb(**changes: object) -> float:
    return estimate(LLAMA_70B, shape_for(plan(**changes))).required_gb()


def test_70b_full_fine_tune_plans_onto_a_cluster_with_the_per_gpu_figure() -> None:
    t = plan(sft=True, gpu_count=8, nodes=2)
    assert (t.method, t.zero_stage, t.processes, t.nodes) == ("full", 3, 16, 2)
    assert t.summary.endswith("16 training processes, on 2 nodes")
    one_pod = need_gb(sft=True, gpu_count=8, shard_model=True)
    two_nodes = need_gb(sft=True, gpu_count=8, nodes=2)
    four_nodes = need_gb(sft=True, gpu_count=8, nodes=4)
    # ZeRO-3 divides weights, gradients and Adam by every GPU of every node.
    assert one_pod > 180 and 95 < two_nodes < 110 and 50 < four_nodes < 65
    with pytest.raises(PreflightError):  # no pod of 8 GPUs holds it
        choose(catalog(8), one_pod, support=stack_for("openr1").gpus)

    clusters, verdicts = choose_cluster(
        cluster_catalog(), two_nodes, 2, support=stack_for("openr1").gpus
    )
    first = clusters[0]
    assert first.gpu.id == "NVIDIA H200" and first.total_gpus == 16
    assert first.label == "2 nodes × 8× H200 SXM"
    assert first.price_per_hour == pytest.approx(3.59 * 8 * 2)  # every GPU of both nodes
    skipped = {v.offer.display_name: v.reason for v in verdicts if not v.kept}
    assert "GB needed" in skipped["H100 SXM"]

    clusters, _ = choose_cluster(cluster_catalog(), four_nodes, 4)
    assert clusters[0].gpu.display_name == "A100 SXM"  # priority family, and it fits now


def test_a_cluster_no_gpu_holds_is_refused_with_the_reason() -> None:
    # GRPO with colocated vLLM keeps the whole bf16 model in every GPU's vLLM share: ZeRO
    # cannot shard that, so no number of nodes helps.
    need = need_gb(gpu_count=8, nodes=8)
    with pytest.raises(PreflightError) as refused:
        choose_cluster(cluster_catalog(), need, 8)
    assert refused.value.reason == "no_gpu_fits"
    assert (
        "No cluster GPU holds" in refused.value.message and "B200 (180 GB)" in refused.value.message
    )
    # Fewer than 8 nodes: the message says more nodes would shard it thinner.
    with pytest.raises(PreflightError, match=r"Add nodes \(--nodes up to 8\)"):
        choose_cluster(cluster_catalog(), need_gb(sft=True, gpu_count=8, nodes=2) * 2, 2)


def test_max_price_is_checked_against_the_whole_cluster() -> None:
    need = need_gb(sft=True, gpu_count=8, nodes=2)
    # One H200 node costs 8 × 3.59 = 28.72 $/h, which a per-node reading would let pass.
    with pytest.raises(RefusedChoice) as refused:
        choose_cluster(cluster_catalog(), need, 2, max_price=40.0)
    assert "$57.44/h for the cluster > --max-price $40.00/h" in refused.value.message
    clusters, _ = choose_cluster(cluster_catalog(), need, 2, max_price=60.0)
    assert [c.gpu.display_name for c in clusters] == ["H200 SXM"]  # B200 costs more


def test_out_of_stock_cluster_types_are_no_capacity() -> None:
    need = need_gb(sft=True, gpu_count=8, nodes=2)
    empty = {"H200 SXM": {"stock": None}, "B200": {"stock": None}}
    with pytest.raises(PreflightError) as refused:
        choose_cluster(cluster_catalog(**empty), need, 2)
    assert refused.value.reason == "no_capacity"


def test_nodes_needed_is_the_fewest_that_fit() -> None:
    def need(nodes: int) -> float:
        return need_gb(sft=True, gpu_count=8, nodes=nodes)

    assert nodes_needed(need, 80) == (3, pytest.approx(need(3)))  # 3 × 8 H100s: about 73 GB
    assert nodes_needed(need, 141)[0] == 2  # type: ignore[index]
    assert nodes_needed(need, 24) is None  # not even 8 nodes of 24 GB cards
    assert nodes_needed(lambda n: None, 1000) is None  # a run that cannot go multi-node


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nodes": 9, "gpu_count": 8}, "--nodes must be 2 to 8"),
        ({"nodes": 0, "gpu_count": 8}, "--nodes must be 2 to 8"),
        ({"nodes": 2}, "nodes of 8 GPUs: pass --gpu-count 8"),
        ({"nodes": 2, "gpu_count": 8, "vllm_mode": "server"}, "--vllm-mode server serves vLLM"),
        ({"nodes": 2, "gpu_count": 8, "sft": True, "merge_model": True}, "--merge-model"),
    ],
)
def test_what_cannot_run_on_a_cluster_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(RunOptions(**changes))  # type: ignore[arg-type]


def test_nodes_train_under_zero3_and_refuse_a_4bit_base() -> None:
    t = plan(sft=True, gpu_count=8, nodes=2, deepspeed_stage=2)
    assert t.zero_stage == 3 and "forcing ZeRO-3" in " ".join(t.notes)
    lora = plan(sft=True, gpu_count=8, nodes=2, overrides=(("use_peft", "true"),))
    assert (lora.method, lora.zero_stage) == ("lora", 3)
    with pytest.raises(ConfigError, match="--nodes means ZeRO-3"):
        plan(sft=True, gpu_count=8, nodes=2, overrides=(("load_in_4bit", "true"),))


def test_cpu_nodes_are_one_process_each() -> None:
    # The emulated cluster (CI) trains with use_cpu: one gloo rank per node.
    t = plan(sft=True, gpu_count=8, nodes=2, overrides=(("use_cpu", "true"),))
    assert (t.processes, t.nodes, t.zero_stage) == (2, 2, None)
