"""The recipe-key whitelists against the real parsers.

* trl: the whitelist files must equal a fresh introspection of the installed TRL (stale file →
  rerun ``python tools/schema_gen.py --regenerate``), and every recipe the golden
  cases render must parse with TRL's own ``TrlParser`` with nothing left over.
* openr1: TRL 0.18 cannot be installed here, so the files are checked against known facts
  about that stack (docs/trainers.md, "Recipe keys").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from thinnka.planning.schema import load_schema, schema_path
from thinnka.planning.versions import TRL_PIN

trl = pytest.importorskip("trl")
GOLDEN = Path(__file__).parents[1] / "golden" / "rendering"


@pytest.mark.parametrize("mode", ["grpo", "sft"])
def test_trl_whitelist_is_not_stale(mode: str) -> None:
    from tools.schema_gen import build_trl

    if trl.__version__ != TRL_PIN:
        pytest.skip(f"installed trl {trl.__version__} is not the pinned {TRL_PIN}")
    stored = json.loads(schema_path("trl", mode).read_text())
    fresh = build_trl(mode)
    missing = sorted(set(fresh["keys"]) - set(stored["keys"]))
    extra = sorted(set(stored["keys"]) - set(fresh["keys"]))
    assert not missing and not extra, (
        f"recipes/schema/trl_{mode}.json is stale (missing {missing}, extra {extra}); run "
        "`python tools/schema_gen.py --regenerate`"
    )
    assert stored == fresh, "types changed: run `python tools/schema_gen.py --regenerate`"


def _parser_types(mode: str) -> tuple[Any, ...]:
    from trl import DatasetMixtureConfig, GRPOConfig, ModelConfig, ScriptArguments, SFTConfig
    from trl.scripts.grpo import GRPOScriptArguments

    if mode == "grpo":
        return (GRPOScriptArguments, GRPOConfig, ModelConfig, DatasetMixtureConfig)
    return (ScriptArguments, SFTConfig, ModelConfig, DatasetMixtureConfig)


def _trl_goldens() -> list[Path]:
    return sorted(GOLDEN.glob("trl_*.yaml"))


@pytest.mark.parametrize("golden", _trl_goldens(), ids=lambda p: p.stem)
def test_rendered_trl_recipe_parses_with_trl(golden: Path, tmp_path: Path) -> None:
    from trl import TrlParser

    data = yaml.safe_load(golden.read_text())
    mode = "sft" if golden.stem.startswith("trl_sft") else "grpo"
    recipe = data["recipe"]
    # What TrlParser keeps from a YAML file is decided here; leftovers would be dropped.
    assert TrlParser(_parser_types(mode)).set_defaults_with_config(**recipe) == []
    # A full parse builds the dataclasses, whose __post_init__ checks the hardware and (GRPO)
    # generation_batch_size against this machine's single process: parse on CPU, with the
    # pod's processes folded into the accumulation so the batch arithmetic is the pod's.
    local = dict(recipe, use_cpu=True, bf16=False)
    local["gradient_accumulation_steps"] = (
        recipe.get("gradient_accumulation_steps", 1) * data["training"]["processes"]
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(local, sort_keys=False))
    *parsed, leftovers = TrlParser(_parser_types(mode)).parse_args_and_config(
        ["--config", str(path)], return_remaining_strings=True
    )
    assert leftovers == []
    training = parsed[1]
    assert training.learning_rate == pytest.approx(float(recipe["learning_rate"]))
    assert training.output_dir == recipe["output_dir"]
    if mode == "grpo":
        assert parsed[0].reward_funcs == recipe["reward_funcs"]
        assert training.num_generations == recipe["num_generations"]


def test_there_are_trl_goldens_to_parse() -> None:
    assert len(_trl_goldens()) >= 20


# ------------------------------------------------------------------ Open R1 files
def test_openr1_whitelists_match_the_documented_stack() -> None:
    grpo, sft = load_schema("openr1", "grpo"), load_schema("openr1", "sft")
    # dataclasses.fields() counts 223 and 178, the parser-internal _n_gpu included.
    assert len(grpo.keys) == 223 - 1
    assert len(sft.keys) == 178 - 1
    for key in ("dtype", "vllm_device", "target_modules", "bnb_4bit_compute_dtype"):
        assert key not in grpo.keys and key not in sft.keys
    for key in ("dataset_num_proc", "max_length", "max_seq_length", "eos_token"):
        assert key in sft.keys and key not in grpo.keys
    for key in ("chat_template", "system_prompt", "torch_dtype", "use_cpu", "dataset_mixture"):
        assert key in grpo.keys and key in sft.keys
    assert grpo.keys["torch_dtype"].choices == ("auto", "bfloat16", "float16", "float32")


def test_openr1_doc_examples_use_only_known_keys() -> None:
    # Keys of typical Open R1 recipes: GRPO LoRA with colocated vLLM; SFT, with QLoRA's keys.
    grpo_example = """model_name_or_path attn_implementation torch_dtype use_peft lora_r lora_alpha
        lora_target_modules dataset_name dataset_prompt_column system_prompt reward_funcs
        reward_weights use_vllm vllm_mode vllm_gpu_memory_utilization num_generations
        per_device_train_batch_size gradient_accumulation_steps max_prompt_length
        max_completion_length beta learning_rate bf16 gradient_checkpointing
        gradient_checkpointing_kwargs max_steps save_strategy save_steps report_to push_to_hub
        hub_model_id hub_strategy output_dir"""
    sft_example = """model_name_or_path torch_dtype attn_implementation dataset_name dataset_config
        dataset_num_proc eos_token max_length packing per_device_train_batch_size
        gradient_accumulation_steps learning_rate lr_scheduler_type lr_scheduler_kwargs
        warmup_ratio num_train_epochs bf16 gradient_checkpointing use_liger_kernel save_strategy
        report_to wandb_project push_to_hub output_dir use_peft load_in_4bit bnb_4bit_quant_type
        use_bnb_nested_quant lora_r lora_alpha lora_dropout lora_target_modules"""
    assert set(grpo_example.split()) <= set(load_schema("openr1", "grpo").keys)
    assert set(sft_example.split()) <= set(load_schema("openr1", "sft").keys)


def test_every_template_key_is_whitelisted() -> None:
    from thinnka.rendering.recipe import load_template

    for trainer in ("openr1", "trl"):
        for mode in ("grpo", "sft"):
            template = load_template(trainer, mode)
            keys = set(template.recipe)
            for block in template.blocks.values():
                keys |= set(block)
            unknown = keys - set(load_schema(trainer, mode).keys)
            assert not unknown, f"{trainer}_{mode}.yaml: {sorted(unknown)}"


def test_the_generator_is_an_offline_tool_outside_the_runtime_package() -> None:
    import importlib.util

    assert importlib.util.find_spec("thinnka.rendering.schema_gen") is None
    from tools.schema_gen import main

    with pytest.raises(SystemExit):  # nothing asked for: a usage error, nothing written
        main([])
