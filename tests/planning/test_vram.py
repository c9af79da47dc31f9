"""The VRAM estimate: the worked example of docs/memory.md, monotonicity, weight-file counting,
and a cross-check against transformers' own model."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest

from thinnka.errors import PreflightError
from thinnka.planning.vram import GB, ModelFacts, TrainingShape, estimate

# Qwen2.5-7B's config.json and Hub safetensors total (the worked example's model).
QWEN_7B_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "model_type": "qwen2",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 152064,
}
QWEN_7B_PARAMS = 7_615_616_512

# docs/memory.md, "Worked example": GRPO + QLoRA r16, prompt 512 + completion 2048, batch 1,
# accumulation 4, one L40S, vLLM colocate.
WORKED = TrainingShape(
    mode="grpo",
    method="qlora",
    zero_stage=0,
    num_processes=1,
    per_device_batch=1,
    gradient_accumulation_steps=4,
    prompt_length=512,
    completion_length=2048,
    vllm="colocate",
    vllm_gpu_memory_utilization=None,
)


@pytest.fixture
def qwen7b() -> ModelFacts:
    return ModelFacts.from_hub(
        QWEN_7B_PARAMS, {"BF16": QWEN_7B_PARAMS}, [("model-00001-of-00004.safetensors", 1)],
        QWEN_7B_CONFIG,
    )  # fmt: skip


def naive_required_gb(weight_bytes: int, gpu_count: int = 1, shard: bool = False) -> int:
    """The original's estimate: weight-file GiB, rounded up (sharded: GiB / GPUs × 1.2)."""
    size = weight_bytes / 1024**3
    return math.ceil(size / max(1, gpu_count) * 1.2) if shard else math.ceil(size)


def close(value: float, expected: float, rel: float = 0.10) -> bool:
    return abs(value - expected) <= rel * expected


# ------------------------------------------------------------------ worked example
def test_worked_example_terms_match_docs_memory(qwen7b: ModelFacts) -> None:
    assert qwen7b.num_parameters == qwen7b.config_parameters()  # the architecture is right
    assert close(qwen7b.linear_params / 1e9, 6.5, rel=0.02)
    assert close(qwen7b.embedding_params / 1e9, 1.09, rel=0.02)
    assert qwen7b.lora_params(16) == 16 * 28 * (9 * 3584 + 2 * 512 + 3 * 18944)
    assert qwen7b.kv_bytes_per_token == 57_344  # "57 KB/token"

    e = estimate(qwen7b, WORKED)
    # Base 5.5 GB (+ the dequantized-layer buffer the table leaves out), adapters
    # 0.65, activations 0.9, logits 2.5, vLLM 17.3, overheads 2.
    assert close(e.weights / GB, 5.5)
    assert close(e.lora_states / GB, 0.65)
    assert close(e.activations / GB, 0.9)
    assert close(e.logits / GB, 2.5)
    assert close(e.vllm / GB, 17.3, rel=0.02)
    assert e.cuda_overhead == 2 * GB
    assert e.gradients == e.optimizer == e.reference_model == e.generation == 0
    # The accuracy target's tolerance: max(10%, 2 GB) around the ≈ 29 GB total.
    assert abs(e.total_gb - 29) <= max(0.1 * 29, 2)


def test_worked_example_fit_decisions(qwen7b: ModelFacts) -> None:
    auto = estimate(qwen7b, WORKED)
    # "It fits on 48 GB with u ≈ 0.4, and does not fit on 24 GB"; vLLM "needs u ≥ 0.36".
    u = auto.vllm_utilization_for(48)
    assert u is not None and 0.36 <= u <= 0.4
    assert auto.fits(48) and not auto.fits(24)
    assert 29 <= auto.required_gb() <= 34

    # "At the TRL default u = 0.3 vLLM cannot even hold the weights."
    trl_default = estimate(qwen7b, dataclasses.replace(WORKED, vllm_gpu_memory_utilization=0.3))
    assert not trl_default.fits(48)
    assert trl_default.vllm / GB > 0.3 * 48
    assert trl_default.required_gb() > 48
    assert estimate(qwen7b, dataclasses.replace(WORKED, vllm_gpu_memory_utilization=0.4)).fits(48)


def test_breakdown_lists_nonzero_terms_in_gb(qwen7b: ModelFacts) -> None:
    e = estimate(qwen7b, WORKED)
    rows = dict(e.breakdown())
    assert set(rows) == {
        "weights",
        "LoRA adapters (weights, grads, Adam)",
        "activations",
        "logits and loss",
        "CUDA context and NCCL",
        "vLLM share (colocate)",
    }
    assert sum(rows.values()) == pytest.approx(e.total_gb)
    gib = dict(e.breakdown("GiB"))
    assert gib["weights"] == pytest.approx(rows["weights"] * GB / 2**30)
    assert e.total_gib == pytest.approx(e.total / 2**30)


def test_original_estimate_is_far_too_small_for_full_fine_tuning(qwen7b: ModelFacts) -> None:
    # The original asked for the bf16 file size (≈ 14.2 GiB → 15) for GRPO, which is a
    # full fine-tune with a reference model: model states alone are 16P ≈ 122 GB.
    naive = naive_required_gb(2 * QWEN_7B_PARAMS)
    assert naive == 15
    full = estimate(qwen7b, TrainingShape(mode="grpo", method="full", zero_stage=0, beta=0.04))
    assert full.weights + full.gradients + full.optimizer == 16 * QWEN_7B_PARAMS
    assert full.required_gb() > 8 * naive
    # With --shard-model on 8 GPUs the original wanted ceil(14.2/8·1.2) = 3 GB per GPU.
    sharded = TrainingShape(mode="grpo", method="full", zero_stage=3, num_processes=8)
    assert naive_required_gb(2 * QWEN_7B_PARAMS, 8, shard=True) == 3
    assert estimate(qwen7b, sharded).required_gb() > 10 * 3


# ------------------------------------------------------------------ monotonicity
def test_more_gpus_under_zero3_need_less_per_gpu(qwen7b: ModelFacts) -> None:
    needs = [
        estimate(qwen7b, TrainingShape(method="full", zero_stage=3, num_processes=n)).total
        for n in (1, 2, 4, 8)
    ]
    assert needs == sorted(needs, reverse=True) and len(set(needs)) == 4


def test_zero2_shards_only_optimizer_side(qwen7b: ModelFacts) -> None:
    one, eight = (
        estimate(qwen7b, TrainingShape(mode="sft", method="full", zero_stage=2, num_processes=n))
        for n in (1, 8)
    )
    assert one.weights == eight.weights  # ZeRO-2 keeps full bf16 weights everywhere
    assert eight.optimizer * 8 == pytest.approx(one.optimizer, rel=1e-6)
    p = QWEN_7B_PARAMS
    assert eight.weights + eight.gradients + eight.optimizer == pytest.approx(4 * p + 16 * p / 8)


@pytest.mark.parametrize("stage,n", [(0, 1), (2, 1), (2, 4), (3, 4)])
def test_qlora_below_lora_below_full(qwen7b: ModelFacts, stage: int, n: int) -> None:
    def total(method: str) -> int:
        shape = TrainingShape(mode="sft", method=method, zero_stage=stage, num_processes=n)  # type: ignore[arg-type]
        return estimate(qwen7b, shape).total

    assert total("qlora") < total("lora") < total("full")


@pytest.mark.parametrize("mode", ["sft", "grpo"])
def test_longer_sequences_need_more(qwen7b: ModelFacts, mode: str) -> None:
    totals = [
        estimate(qwen7b, TrainingShape(mode=mode, method="qlora", completion_length=c)).total  # type: ignore[arg-type]
        for c in (512, 2048, 8192)
    ]
    assert totals == sorted(totals) and len(set(totals)) == 3


def test_vllm_colocate_needs_more_than_no_vllm(qwen7b: ModelFacts) -> None:
    base = TrainingShape(mode="grpo", method="full", zero_stage=3, num_processes=8)
    without = estimate(qwen7b, base)
    with_vllm = estimate(qwen7b, dataclasses.replace(base, vllm="colocate"))
    assert with_vllm.required_gb() > without.required_gb()
    assert with_vllm.total > without.total
    assert with_vllm.vllm > 2 * QWEN_7B_PARAMS  # a full, unsharded bf16 copy + KV


def test_checkpointing_eager_and_liger(qwen7b: ModelFacts) -> None:
    shape = TrainingShape(mode="sft", method="qlora")
    base = estimate(qwen7b, shape)
    no_checkpointing = dataclasses.replace(shape, gradient_checkpointing=False)
    assert estimate(qwen7b, no_checkpointing).activations > 5 * base.activations
    assert estimate(qwen7b, dataclasses.replace(shape, attn="eager")).activations > base.activations
    assert estimate(qwen7b, dataclasses.replace(shape, liger_loss=True)).logits == 0


def test_reference_model_only_with_beta_and_no_peft(qwen7b: ModelFacts) -> None:
    full = TrainingShape(mode="grpo", method="full", zero_stage=3, num_processes=4, vllm="colocate")
    assert estimate(qwen7b, full).reference_model == QWEN_7B_PARAMS * 2 // 4
    assert estimate(qwen7b, dataclasses.replace(full, beta=0.0)).reference_model == 0
    lora = dataclasses.replace(full, method="lora")
    assert estimate(qwen7b, lora).reference_model == 0  # adapters off = reference
    assert estimate(qwen7b, dataclasses.replace(full, mode="sft", vllm=None)).reference_model == 0


def test_server_mode_puts_vllm_on_its_own_gpu(qwen7b: ModelFacts) -> None:
    shape = TrainingShape(mode="grpo", method="full", zero_stage=3, num_processes=7, vllm="server")
    e = estimate(qwen7b, shape)
    assert e.total == e.training  # nothing of vLLM on the training GPUs
    assert e.vllm > 2 * QWEN_7B_PARAMS
    assert e.required_gb() >= e.vllm / GB / 0.9
    assert not e.fits(16)  # 15.2 GB of weights cannot be served from a 16 GB card


def test_grpo_without_vllm_counts_generation(qwen7b: ModelFacts) -> None:
    shape = TrainingShape(mode="grpo", method="full", zero_stage=3, num_processes=4, vllm=None)
    e = estimate(qwen7b, shape)
    # ZeRO-3 gathers every weight for HF generate, plus the KV cache of one round.
    assert e.generation > 2 * QWEN_7B_PARAMS * 3 / 4
    assert e.vllm == 0 and e.vllm_mode is None


@pytest.mark.parametrize(
    "shape",
    [
        WORKED,
        dataclasses.replace(WORKED, vllm_gpu_memory_utilization=0.3),
        TrainingShape(mode="sft", method="qlora", zero_stage=2),
        TrainingShape(mode="grpo", method="full", zero_stage=3, num_processes=3, vllm="server"),
        TrainingShape(mode="grpo", method="full", zero_stage=3, num_processes=8, vllm="colocate"),
    ],
)
def test_required_gb_is_the_smallest_fit(qwen7b: ModelFacts, shape: TrainingShape) -> None:
    e = estimate(qwen7b, shape)
    assert e.fits(e.required_gb())
    assert not e.fits(e.required_gb() - 0.1)
    assert e.fits(e.required_gb() + 40)


def test_margin_is_applied(qwen7b: ModelFacts) -> None:
    e = estimate(qwen7b, TrainingShape(mode="sft", method="qlora"))
    assert e.required_gb() * GB * 0.9 >= e.training
    assert e.required_gb() * GB < e.training / 0.9 + 0.2 * GB


def test_qlora_warnings(qwen7b: ModelFacts) -> None:
    e = estimate(qwen7b, TrainingShape(mode="sft", method="qlora", zero_stage=3, num_processes=2))
    assert any("ZeRO-3" in note for note in e.notes)
    assert any("weight sync" in note for note in estimate(qwen7b, WORKED).notes)


# ------------------------------------------------------------------ ModelFacts.from_hub
def test_duplicate_formats_counted_once() -> None:
    size = 2 * 1_000_000_000  # 1B bf16 parameters
    files = [
        ("model.safetensors", size),
        ("pytorch_model.bin", size),
        ("original/consolidated.00.pth", size),
        ("consolidated.safetensors", size),
        ("model-Q4_K_M.gguf", size // 4),
        ("model-Q8_0.gguf", size // 2),
        ("training_args.bin", 5_000),
        ("optimizer.pt", 2 * size),
        ("config.json", 700),
    ]
    facts = ModelFacts.from_hub(None, None, files, {"torch_dtype": "bfloat16"})
    assert facts.num_parameters == 1_000_000_000
    assert facts.source == "files"


@pytest.mark.parametrize(
    "files,expected",
    [
        # Sharded safetensors win over sharded .bin.
        (
            [("model-00001-of-00002.safetensors", 6), ("model-00002-of-00002.safetensors", 4),
             ("pytorch_model-00001-of-00002.bin", 6), ("pytorch_model-00002-of-00002.bin", 4)],
            5,
        ),
        # Only .bin: count it, not training_args.bin.
        ([("pytorch_model.bin", 8), ("training_args.bin", 4)], 4),
        # Only Meta's native checkpoint.
        ([("original/consolidated.00.pth", 8), ("original/params.json", 1)], 4),
        # Checkpoint folders pushed next to the final weights are not counted again.
        ([("model.safetensors", 8), ("checkpoint-500/model.safetensors", 8)], 4),
    ],
)  # fmt: skip
def test_weight_file_groups(files: list[tuple[str, int]], expected: int) -> None:
    assert ModelFacts.from_hub(None, None, files, None).num_parameters == expected


def test_file_dtype_width_comes_from_config() -> None:
    files = [("model.safetensors", 4_000)]
    assert ModelFacts.from_hub(None, None, files, {"torch_dtype": "float32"}).num_parameters == 1000
    assert ModelFacts.from_hub(None, None, files, {"dtype": "bfloat16"}).num_parameters == 2000
    assert ModelFacts.from_hub(None, None, files, {}).num_parameters == 2000  # default 2 bytes


def test_safetensors_counts_take_precedence() -> None:
    files = [("model.safetensors", 10**12), ("pytorch_model.bin", 10**12)]
    by_total = ModelFacts.from_hub(1234, {"BF16": 1000, "F32": 234}, files, QWEN_7B_CONFIG)
    assert by_total.num_parameters == 1234
    assert by_total.source == "safetensors"
    assert dict(by_total.parameters_by_dtype) == {"BF16": 1000, "F32": 234}
    by_dtype = ModelFacts.from_hub(None, {"BF16": 1000, "F32": 234}, files, None)
    assert by_dtype.num_parameters == 1234


def test_quantized_repo_uses_the_architecture() -> None:
    # bnb 4-bit repos report packed uint8 elements: about half the real count.
    cfg = {**QWEN_7B_CONFIG, "quantization_config": {"load_in_4bit": True}}
    packed = {"BF16": 1_100_000_000, "U8": 3_350_000_000}
    facts = ModelFacts.from_hub(4_450_000_000, packed, [], cfg)
    assert facts.num_parameters == QWEN_7B_PARAMS
    assert facts.source == "config"


def test_config_only_and_nothing_at_all() -> None:
    assert ModelFacts.from_hub(None, None, [], QWEN_7B_CONFIG).num_parameters == QWEN_7B_PARAMS
    with pytest.raises(PreflightError) as err:
        ModelFacts.from_hub(None, None, [("README.md", 10)], {"model_type": "llama"})
    assert err.value.reason == "unknown_model_size"


def test_multimodal_text_config_and_gpt2_aliases() -> None:
    nested = {"model_type": "llava", "text_config": dict(QWEN_7B_CONFIG)}
    assert ModelFacts.from_hub(None, None, [], nested).hidden_size == 3584
    gpt2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257}
    facts = ModelFacts.from_hub(None, None, [], gpt2)
    # GPT-2 small: 124M with tied embeddings (the formula skips position embeddings and biases).
    assert close(facts.num_parameters / 1e6, 124, rel=0.05)


def test_without_config_the_estimate_still_counts_everything() -> None:
    facts = ModelFacts(num_parameters=7_000_000_000)
    e = estimate(facts, TrainingShape(mode="sft", method="qlora"))
    assert e.activations > 0 and e.logits > 0 and e.lora_states > 0
    assert any("guess" in note for note in e.notes)
    known = ModelFacts.from_hub(None, None, [], QWEN_7B_CONFIG)
    assert 0.5 < e.total / estimate(known, TrainingShape(mode="sft", method="qlora")).total < 2


def test_config_count_matches_transformers_meta_build() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Qwen2Config(
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        vocab_size=151936,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    real = sum(p.numel() for p in model.parameters())
    linear = sum(
        m.weight.numel()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name != "lm_head"
    )
    facts = ModelFacts.from_hub(None, None, [], cfg.to_dict())
    assert facts.source == "config"
    assert abs(facts.num_parameters - real) <= 0.01 * real
    assert abs(facts.linear_params - linear) <= 0.01 * linear
    assert facts.tie_word_embeddings is True


# ------------------------------------------------------------------ shape
# (options → plan → shape: tests/planning/test_training.py)
def test_shape_validation() -> None:
    with pytest.raises(ValueError):
        TrainingShape(vllm_gpu_memory_utilization=1.2)
    with pytest.raises(ValueError):
        TrainingShape(num_processes=0)


def test_planning_imports_nothing_heavy() -> None:
    # Planning runs before anything is rented: no torch, no transformers, no options.
    code = (
        "import sys, thinnka.planning; "
        "bad = {'torch', 'transformers', 'thinnka.options', 'httpx'} & set(sys.modules); "
        "sys.exit(sorted(bad) or 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
