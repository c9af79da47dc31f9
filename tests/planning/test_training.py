"""The one TrainingPlan: options + --set → decisions that the estimate and the recipe share.

Every test here goes through ``plan_training``, the function ``thinnka plan``, the estimate
step and the renderer all call, so what is asserted about the plan holds for all three.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.planning.test_gpus import catalog
from tests.planning.test_vram import QWEN_7B_CONFIG, QWEN_7B_PARAMS
from thinnka.errors import ConfigError, PreflightError
from thinnka.options import RunOptions, validate
from thinnka.planning.facts import ModelContext, RemotePaths
from thinnka.planning.gpus import GpuOffer, architecture, choose, explain
from thinnka.planning.overrides import typed_overrides
from thinnka.planning.stacks import stack_for
from thinnka.planning.training import TrainingPlan, plan_training
from thinnka.planning.vram import ModelFacts, TrainingShape, estimate, shape_for
from thinnka.rendering import render

MODEL = ModelContext(hub_model_id="me/out", has_chat_template=True)
PATHS = RemotePaths(run_dir="/w/r", output_dir="/w/o", venv="/v", hf_home="/w/hf")
QWEN_7B = ModelFacts.from_hub(QWEN_7B_PARAMS, None, [], QWEN_7B_CONFIG)


def plan(**changes: object) -> TrainingPlan:
    return plan_training(validate(RunOptions(**changes)), MODEL)  # type: ignore[arg-type]


def shape(**changes: object) -> TrainingShape:
    return shape_for(plan(**changes))


def sets(*pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, _, v in (p.partition("=") for p in pairs))


# ------------------------------------------------------------------ decide once
def test_estimate_follows_set_load_in_4bit_false() -> None:
    # Issue 8's done-when: the bf16 LoRA recipe that --set load_in_4bit=false renders needs
    # more memory than the QLoRA default, and the estimate knows it.
    qlora = estimate(QWEN_7B, shape(sft=True))
    bf16 = estimate(QWEN_7B, shape(sft=True, overrides=sets("load_in_4bit=false")))
    assert bf16.required_gb() > qlora.required_gb() + 5  # 2 bytes vs ~0.5 per weight
    assert bf16.weights > 2.5 * qlora.weights


def test_estimate_and_recipe_come_from_the_same_plan() -> None:
    options = validate(RunOptions(sft=True, gpu_count=2, overrides=sets("load_in_4bit=false")))
    rendered = render(options, MODEL, PATHS)
    t = rendered.training
    assert t == plan_training(options, MODEL)  # deterministic: every step derives the same
    assert (t.method, t.quantization, t.zero_stage, t.processes) == ("lora", None, 3, 2)
    assert rendered.recipe["load_in_4bit"] is False and rendered.recipe["use_peft"] is True
    assert rendered.accelerate["deepspeed_config"]["zero_stage"] == 3
    s = shape_for(t)
    assert (s.method, s.zero_stage, s.num_processes) == ("lora", 3, 2)


def test_plan_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan().method = "full"  # type: ignore[misc]


def test_typed_overrides_is_the_one_place_set_meets_the_schema() -> None:
    merged = typed_overrides(RunOptions(trainer="trl", overrides=sets("beta=0.1", "beta=0.2")))
    assert merged.values == {"beta": 0.2}  # typed, last wins
    spelled = typed_overrides(RunOptions(trainer="trl", overrides=sets("torch_dtype=float16")))
    assert spelled.values == {"dtype": "float16"} and "spelled dtype" in spelled.notes[0]
    with pytest.raises(ConfigError, match="Did you mean 'learning_rate'"):
        typed_overrides(RunOptions(overrides=sets("learnig_rate=1")))


# ------------------------------------------------------------------ GRPO defaults
def test_grpo_defaults() -> None:
    s = shape()
    assert (s.mode, s.method, s.zero_stage, s.num_processes) == ("grpo", "lora", 3, 1)
    assert s.vllm == "colocate" and s.vllm_gpu_memory_utilization == 0.3
    assert s.beta == 0.04  # TRL 0.18's default on Open R1
    assert (s.prompt_length, s.completion_length) == (512, 2048)
    assert s.gradient_checkpointing and not s.liger_loss
    assert shape(trainer="trl").beta == 0.0
    assert "GRPO, LoRA adapters on a bf16 base, vLLM colocate" in s.label


def test_grpo_modes_and_why() -> None:
    qlora = plan(use_vllm=False)
    assert (qlora.method, qlora.quantization, qlora.vllm_mode) == ("qlora", "4bit", None)
    full = plan(shard_model=True, gpu_count=4, deepspeed_stage=2)
    assert (full.method, full.zero_stage, full.processes) == ("full", 3, 4)
    sft_full = plan(sft=True, shard_model=True, gpu_count=4)
    assert (sft_full.method, sft_full.zero_stage) == ("full", 3)
    # The notes say which mode was chosen and why.
    assert any("trl #3654" in n for n in plan().notes)
    assert any("--shard-model" in n for n in full.notes)


def test_a_7b_grpo_run_plans_onto_one_gpu() -> None:
    need = estimate(QWEN_7B, shape())
    chosen = choose(catalog(1), need.required_gb(), support=stack_for("openr1").gpus)
    # One 80 GB GPU: the bf16 base (15 GB) plus vLLM's own copy inside TRL's 0.3 share
    # (17 GB, so 48 GB cards are too small at that share), adapters, logits, overhead.
    assert (chosen[0].label, chosen[0].memory_gb) == ("A100 SXM", 80)
    assert need.notes[0].startswith("Estimated for GRPO, LoRA adapters on a bf16 base")
    # A full fine-tune of the same model (16 bytes per parameter) fits no single GPU.
    assert estimate(QWEN_7B, shape(shard_model=True)).required_gb() > 200


def test_sft_is_qlora_on_zero2_unless_sharded() -> None:
    s = shape(sft=True, gpu_count=2)
    assert (s.mode, s.method, s.zero_stage, s.num_processes) == ("sft", "qlora", 2, 2)
    assert s.vllm is None and s.seq_length == 2560 and s.loss_tokens == 2560
    sharded = shape(sft=True, shard_model=True, deepspeed_stage=2, gpu_count=4)
    assert (sharded.method, sharded.zero_stage, sharded.num_processes) == ("full", 3, 4)


def test_grpo_stage_and_server_mode() -> None:
    assert shape(deepspeed_stage=2, gpu_count=4).zero_stage == 2
    server = shape(gpu_count=4, vllm_mode="server")
    assert (server.vllm, server.num_processes) == ("server", 3)
    assert shape(use_vllm=False).vllm is None
    assert shape(use_vllm=False).zero_stage == 0  # one process: no DeepSpeed


def test_overrides_reach_the_estimate() -> None:
    s = shape(
        overrides=sets(
            "beta=0",
            "vllm_gpu_memory_utilization=0.45",
            "lora_r=64",
            "gradient_checkpointing=false",
            "per_device_train_batch_size=2",
        )
    )
    assert s.beta == 0.0 and s.vllm_gpu_memory_utilization == 0.45
    assert s.lora_r == 64 and not s.gradient_checkpointing and s.per_device_batch == 2
    assert shape(sft=True, overrides=sets("max_length=4096")).seq_length == 4096
    assert shape(sft=True, overrides=sets("load_in_8bit=true")).quant_bits == 8
    assert shape(overrides=sets("use_cpu=true", "use_vllm=false")).num_processes == 1


# ------------------------------------------------------------------ GPU architectures
def test_architectures_by_name() -> None:
    names = {o.display_name: architecture(o) for o in catalog()}
    assert names["RTX 5090"] == names["B200"] == names["RTX PRO 6000"] == "blackwell"
    assert names["RTX 6000 Ada"] == names["L40S"] == names["RTX 4090"] == "ada"
    assert names["H100 SXM"] == names["H200 SXM"] == "hopper"
    assert names["A100 SXM"] == names["RTX A5000"] == names["A40"] == "ampere"
    assert names["V100 SXM2 32GB"] == "volta" and names["MI300X"] is None
    assert architecture(GpuOffer("NVIDIA RTX 5000 Ada Generation", "RTX 5000 Ada", 32)) == "ada"


def test_openr1_never_picks_blackwell_and_says_why() -> None:
    openr1, trl = stack_for("openr1").gpus, stack_for("trl").gpus
    chosen = choose(catalog(), 20, support=openr1, strategy="cheapest")
    assert not [o for o in chosen if architecture(o) == "blackwell"]
    verdict = next(v for v in explain(catalog(), 20, support=openr1) if v.offer.id == "NVIDIA B200")
    assert not verdict.kept
    assert "openr1 stack (Blackwell)" in verdict.reason and "torch 2.6.0" in verdict.reason
    assert "NVIDIA B200" in [o.id for o in choose(catalog(), 20, support=trl)]
    with pytest.raises(PreflightError, match="B200 is not usable by the openr1 stack"):
        choose(catalog(), 20, gpu_type="B200", support=openr1)


def test_the_planner_filters_by_the_runs_stack() -> None:
    from thinnka.preflight import choose_gpus

    need = estimate(QWEN_7B, shape(sft=True))
    offers = catalog()
    openr1, verdicts = choose_gpus(offers, RunOptions(sft=True), need)
    assert "NVIDIA B200" not in [o.id for o in openr1]
    skipped = {v.offer.id: v.reason for v in verdicts if not v.kept}
    assert "no Blackwell kernels" in skipped["NVIDIA GeForce RTX 5090"]
    trl, _ = choose_gpus(offers, RunOptions(sft=True, trainer="trl"), need)
    assert "NVIDIA B200" in [o.id for o in trl]
