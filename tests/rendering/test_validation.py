"""Rules of ``thinnka.rendering``: --set validation and typing, batch rule, QLoRA/ZeRO/vLLM
refusals and adjustments, the transformers choice table, chat templates, env files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from thinnka.errors import ConfigError
from thinnka.options import RunOptions, validate
from thinnka.planning.chat import CHATML_DEFAULT, system_prompt
from thinnka.planning.facts import ModelContext, RemotePaths
from thinnka.planning.overrides import check_overrides
from thinnka.planning.versions import choose_transformers
from thinnka.rendering import Rendered, render, write_env_file

PATHS = RemotePaths(
    run_dir="/w/thinnka/r", output_dir="/w/models/out", venv="/opt/venv", hf_home="/w/hf"
)
MODEL = ModelContext(hub_model_id="me/out", has_chat_template=True)


def opts(**changes: Any) -> RunOptions:
    return validate(RunOptions(repo_id="Qwen/Qwen2.5-0.5B", **changes))


def go(model: ModelContext = MODEL, **changes: Any) -> Rendered:
    return render(opts(**changes), model, PATHS)


def sets(*pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(tuple(p.split("=", 1)) for p in pairs)  # type: ignore[misc]


# ------------------------------------------------------------------ --set keys and types
@pytest.mark.parametrize("trainer", ["openr1", "trl"])
def test_unknown_set_key_suggests(trainer: str) -> None:
    with pytest.raises(ConfigError, match=r"'learnig_rate'.*Did you mean 'learning_rate'"):
        check_overrides(opts(trainer=trainer, overrides=sets("learnig_rate=1e-5")))


def test_keys_silently_dropped_by_trl_018_are_refused() -> None:
    for key in ("vllm_device", "target_modules", "bnb_4bit_compute_dtype"):
        with pytest.raises(ConfigError, match="not a openr1 GRPO recipe key"):
            check_overrides(opts(overrides=sets(f"{key}=x")))


def test_sft_only_key_refused_for_grpo_and_vice_versa() -> None:
    with pytest.raises(ConfigError, match="max_length"):
        check_overrides(opts(overrides=sets("max_length=10")))
    with pytest.raises(ConfigError, match="num_generations"):
        check_overrides(opts(sft=True, overrides=sets("num_generations=4")))


@pytest.mark.parametrize(
    ("trainer", "pair", "key", "value"),
    [
        ("openr1", "learning_rate=2e-5", "learning_rate", 2e-5),
        ("trl", "learning_rate=2e-5", "learning_rate", 2e-5),
        ("trl", "use_cpu=true", "use_cpu", True),
        ("trl", "bf16=False", "bf16", False),
        ("openr1", "num_train_epochs=3", "num_train_epochs", 3.0),  # a float in transformers
        ("openr1", "max_steps=3", "max_steps", 3),
        ("openr1", "reward_funcs=accuracy", "reward_funcs", ["accuracy"]),
        ("openr1", "reward_funcs=[accuracy, format]", "reward_funcs", ["accuracy", "format"]),
        ("trl", "report_to=[wandb, tensorboard]", "report_to", ["wandb", "tensorboard"]),
        ("trl", "report_to=none", "report_to", "none"),
        (
            "openr1",
            "lr_scheduler_kwargs={min_lr_rate: 0.2}",
            "lr_scheduler_kwargs",
            {"min_lr_rate": 0.2},
        ),
        ("openr1", "temperature=1", "temperature", 1.0),
        ("openr1", "torch_dtype=float32", "torch_dtype", "float32"),
        ("trl", "torch_dtype=float32", "dtype", "float32"),  # alias: TRL 1.x spells it dtype
        ("openr1", "dtype=float32", "torch_dtype", "float32"),  # TRL 0.18 ignores `dtype`
    ],
)
def test_set_values_are_typed(trainer: str, pair: str, key: str, value: Any) -> None:
    recipe = go(trainer=trainer, use_vllm=False, overrides=sets(pair)).recipe
    assert recipe[key] == value
    assert type(recipe[key]) is type(value)


def test_lora_target_modules_keeps_all_linear_and_splits_lists() -> None:
    one = go(sft=True, overrides=sets("lora_target_modules=all-linear")).recipe
    assert one["lora_target_modules"] == "all-linear"
    two = go(sft=True, overrides=sets("lora_target_modules=q_proj, v_proj")).recipe
    assert two["lora_target_modules"] == ["q_proj", "v_proj"]


def test_alias_is_noted() -> None:
    r = go(trainer="trl", sft=True, overrides=sets("torch_dtype=float32"))
    assert "torch_dtype" not in r.recipe
    assert any("spelled dtype" in n for n in r.notes)


@pytest.mark.parametrize(
    "pair",
    ["num_train_epochs=two", "use_cpu=maybe", "torch_dtype=float64", "learning_rate=fast"],
)
def test_bad_set_values(pair: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        check_overrides(opts(overrides=sets(pair)))


def test_set_null_drops_the_key() -> None:
    r = go(overrides=sets("warmup_ratio=null", "temperature=~"))
    assert "warmup_ratio" not in r.recipe
    assert "temperature" not in r.recipe


def test_bf16_false_is_honoured_by_accelerate() -> None:
    r = go(trainer="trl", use_vllm=False, overrides=sets("bf16=false"))
    assert r.recipe["bf16"] is False
    assert r.accelerate["mixed_precision"] == "no"


def test_use_cpu_renders_single_cpu_process() -> None:
    r = go(trainer="trl", use_vllm=False, gpu_count=4, overrides=sets("use_cpu=true"))
    assert r.accelerate["use_cpu"] is True
    assert r.accelerate["distributed_type"] == "NO"
    assert r.training.processes == 1
    with pytest.raises(ConfigError, match="--no-vllm"):
        go(trainer="trl", overrides=sets("use_cpu=true"))


# ------------------------------------------------------------------ GRPO batch rule
def test_batch_rule_adjusts_with_a_note() -> None:
    r = go(per_device_train_batch=1, gradient_accumulation_steps=4, num_generations=16)
    assert r.recipe["num_generations"] == 4
    assert any("Adjusted num_generations from 16 to 4" in n for n in r.notes)


def test_batch_rule_keeps_a_divisor() -> None:
    r = go(gpu_count=4, per_device_train_batch=2, gradient_accumulation_steps=4, num_generations=8)
    assert r.recipe["num_generations"] == 8
    assert not any("Adjusted" in n for n in r.notes)


def test_batch_rule_never_goes_to_one() -> None:
    with pytest.raises(ConfigError, match="--gradient-accumulation-steps"):
        go(per_device_train_batch=1, gradient_accumulation_steps=1, num_generations=4)


def test_batch_rule_uses_server_mode_processes() -> None:
    # 4 GPUs, one serves: 1 × 3 × 4 = 12 completions → 12 of the 16 asked.
    r = go(gpu_count=4, vllm_mode="server", num_generations=16)
    assert r.training.processes == 3
    assert r.accelerate["num_processes"] == 3
    assert r.recipe["num_generations"] == 12


def test_explicit_num_generations_is_not_rewritten() -> None:
    with pytest.raises(ConfigError, match="does not divide"):
        go(overrides=sets("num_generations=3"))


def test_batch_override_readjusts() -> None:
    r = go(overrides=sets("per_device_train_batch_size=3"))
    assert r.recipe["num_generations"] == 12  # 3 × 1 × 4


# ------------------------------------------------------------------ QLoRA, ZeRO, vLLM
def test_sft_defaults_to_qlora_under_zero2() -> None:
    r = go(sft=True, gpu_count=2)
    assert r.recipe["load_in_4bit"] is True and r.recipe["use_peft"] is True
    assert r.accelerate["deepspeed_config"]["zero_stage"] == 2
    assert "QLoRA SFT is incompatible with ZeRO-3; using ZeRO-2 instead." in r.notes


def test_shard_model_is_full_finetune_under_zero3() -> None:
    r = go(sft=True, shard_model=True, gpu_count=2, deepspeed_stage=2)
    assert r.recipe["use_peft"] is False and "load_in_4bit" not in r.recipe
    assert r.accelerate["deepspeed_config"]["zero_stage"] == 3
    assert "Model sharding enabled; forcing ZeRO-3." in r.notes


def test_qlora_with_shard_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="ZeRO-3"):
        go(sft=True, shard_model=True, gpu_count=2, overrides=sets("load_in_4bit=true"))


@pytest.mark.parametrize("trainer", ["openr1", "trl"])
def test_grpo_qlora_turns_vllm_off(trainer: str) -> None:
    r = go(trainer=trainer, gpu_count=2, overrides=sets("use_peft=true", "load_in_4bit=true"))
    assert r.recipe["use_vllm"] is False
    assert "vllm_mode" not in r.recipe
    assert r.accelerate["deepspeed_config"]["zero_stage"] == 2
    assert any("trl #3654" in n for n in r.notes)


@pytest.mark.parametrize("trainer", ["openr1", "trl"])
def test_grpo_defaults_to_lora_adapters_with_vllm(trainer: str) -> None:
    # Adapters (PEFT) by default, within TRL's limit: a 4-bit base cannot sync into vLLM.
    r = go(trainer=trainer)
    assert r.recipe["use_peft"] is True and "load_in_4bit" not in r.recipe
    assert r.recipe["use_vllm"] is True and r.recipe["vllm_mode"] == "colocate"
    assert r.recipe["learning_rate"] == 1.0e-05
    assert (r.training.method, r.training.quantization) == ("lora", None)
    assert any("not QLoRA" in n and "trl #3654" in n for n in r.notes)
    assert r.setup_env["NEED_PEFT"] == "1" and r.setup_env["NEED_VLLM"] == "1"


@pytest.mark.parametrize("trainer", ["openr1", "trl"])
def test_grpo_without_vllm_is_qlora(trainer: str) -> None:
    r = go(trainer=trainer, use_vllm=False, gpu_count=2)
    assert r.recipe["use_peft"] is True and r.recipe["load_in_4bit"] is True
    assert r.recipe["use_vllm"] is False
    assert (r.training.method, r.training.zero_stage) == ("qlora", 2)
    assert r.accelerate["deepspeed_config"]["zero_stage"] == 2
    assert r.setup_env["NEED_BNB"] == "1"


@pytest.mark.parametrize("trainer", ["openr1", "trl"])
def test_grpo_shard_model_is_full_finetune_under_zero3(trainer: str) -> None:
    r = go(trainer=trainer, shard_model=True, gpu_count=4, deepspeed_stage=2)
    assert r.recipe["use_peft"] is False and "lora_r" not in r.recipe
    assert r.recipe["learning_rate"] == 1.0e-06
    assert r.accelerate["deepspeed_config"]["zero_stage"] == 3
    assert (r.training.method, r.training.zero_stage) == ("full", 3)
    assert any("--shard-model" in n and "full fine-tuning" in n for n in r.notes)


def test_use_peft_false_and_8bit_overrides_change_the_method() -> None:
    full = go(overrides=sets("use_peft=false"))
    assert full.training.method == "full" and full.recipe["use_peft"] is False
    eight = go(sft=True, overrides=sets("load_in_8bit=true"))
    assert (eight.training.method, eight.training.quantization) == ("qlora", "8bit")
    assert eight.recipe["load_in_8bit"] is True and "load_in_4bit" not in eight.recipe
    with pytest.raises(ConfigError, match="LoRA adapters only"):
        go(sft=True, overrides=sets("use_peft=false", "load_in_4bit=true"))
    with pytest.raises(ConfigError, match="exclude each other"):
        go(sft=True, overrides=sets("load_in_8bit=true", "load_in_4bit=true"))


def test_trl_command_shows_trls_entry_point_and_keeps_the_launcher_aside() -> None:
    r = go(trainer="trl", sft=True)
    assert r.entry_command[4:6] == ["-m", "trl.scripts.sft"]
    assert r.command[4] == "/w/thinnka/r/thinnka_trl_train.py"
    assert r.training.entry_point == "trl sft"
    assert r.training.wrapper == "thinnka_trl_train.py"


def test_grpo_qlora_with_explicit_vllm_is_refused() -> None:
    with pytest.raises(ConfigError, match="--no-vllm"):
        go(use_vllm=True, overrides=sets("load_in_4bit=true"))


def test_grpo_keeps_requested_stage_and_single_gpu_without_vllm_has_no_deepspeed() -> None:
    assert go(gpu_count=2, deepspeed_stage=2).accelerate["deepspeed_config"]["zero_stage"] == 2
    r = go(use_vllm=False)
    assert r.accelerate["distributed_type"] == "NO"


def test_server_mode_refusals() -> None:
    with pytest.raises(ConfigError, match="trust_remote_code"):
        go(gpu_count=2, vllm_mode="server", trust_remote_code=True)
    r = go(trainer="trl", gpu_count=2, vllm_mode="server", trust_remote_code=True)
    assert r.server_command is not None and "--trust_remote_code" in r.server_command
    assert r.command[-1].endswith("serve_and_train.json")


def test_merge_needs_an_adapter() -> None:
    with pytest.raises(ConfigError, match="use_peft"):
        go(sft=True, merge_model=True, overrides=sets("use_peft=false"))


def test_merge_pushes_adapter_next_to_merged_model() -> None:
    r = go(sft=True, merge_model=True)
    assert r.recipe["hub_model_id"] == "me/out-adapter"
    assert r.merge_command == ["python", "/w/thinnka/r/merge.py", "/w/thinnka/r/merge.json"]
    assert r.files["MODEL_CARD.md"].startswith("---\nbase_model: Qwen/Qwen2.5-0.5B\n")
    assert "**Learning Rate**: 2.0e-04" in r.files["MODEL_CARD.md"]


# ------------------------------------------------------------------ transformers choice
@pytest.mark.parametrize(
    ("trainer", "changes", "model_version", "spec"),
    [
        ("openr1", {}, None, "transformers==4.52.3"),
        ("openr1", {}, "4.53.2", "transformers==4.53.2"),
        ("openr1", {}, "4.57.1", "transformers==4.52.3"),  # outside Open R1's window
        ("openr1", {}, "4.49.0", "transformers==4.52.3"),
        ("openr1", {}, "4.58.0.dev0", "transformers==4.52.3"),
        ("openr1", {}, "4.55.0.dev0", "transformers==4.55.0"),  # dev → its release
        ("openr1", {}, "not-a-version", "transformers==4.52.3"),
        ("openr1", {"transformers_version": "4.55.4"}, "4.53.2", "transformers==4.55.4"),
        ("trl", {}, None, "transformers==5.17.0"),
        ("trl", {}, "4.57.1", "transformers==5.17.0"),  # trl recipes are transformers 5's
        ("trl", {}, "5.16.1", "transformers==5.16.1"),
        ("trl", {}, "4.49.0", "transformers==5.17.0"),
        ("trl", {}, "4.58.0.dev0", "git+https://github.com/huggingface/transformers.git"),
        ("trl", {}, "5.0.0.dev0", "transformers==5.0.0"),
        ("trl", {}, "9.1.0", "transformers==9.1.0"),  # newer than the list: trusted
        (
            "trl",
            {"transformers_from_git": True},
            "4.57.1",
            "git+https://github.com/huggingface/transformers.git",
        ),
        (
            "trl",
            {"transformers_version": "git"},
            None,
            "git+https://github.com/huggingface/transformers.git",
        ),
        ("trl", {"transformers_version": "5.2.0"}, None, "transformers==5.2.0"),
        ("trl", {"skip_setup": True}, "4.57.1", ""),
    ],
)
def test_transformers_choice(
    trainer: str, changes: dict[str, Any], model_version: str | None, spec: str
) -> None:
    choice = choose_transformers(opts(**changes), trainer, model_version, deepspeed=False)
    assert choice.spec == spec
    assert choice.reason


@pytest.mark.parametrize(
    ("trainer", "changes", "match"),
    [
        ("openr1", {"transformers_from_git": True}, "--trainer trl"),
        ("openr1", {"transformers_version": "4.57.6"}, "does not work with the openr1"),
        ("openr1", {"transformers_version": "4.52.9"}, "no such transformers release"),
        ("trl", {"transformers_version": "4.57.1"}, ">=5.0.0"),
    ],
)
def test_transformers_refusals(trainer: str, changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        choose_transformers(opts(**changes), trainer, None, deepspeed=False)


def test_trl_deepspeed_skips_the_excluded_release() -> None:
    choice = choose_transformers(opts(), "trl", "5.1.0", deepspeed=True)
    assert choice.spec == "transformers==5.17.0"
    assert (
        choose_transformers(opts(), "trl", "5.1.0", deepspeed=False).spec == "transformers==5.1.0"
    )


def test_flash_attention_pins() -> None:
    r = go(sft=True, attn_implementation="flash_attention_2")
    assert r.setup_env["FLASH_ATTN"] == "flash-attn==2.7.4.post1"
    t = go(sft=True, trainer="trl", attn_implementation="flash_attention_2")
    assert t.transformers_spec == "transformers[kernels]==5.17.0"
    g = go(
        sft=True, trainer="trl", attn_implementation="flash_attention_2", transformers_from_git=True
    )
    assert g.transformers_spec.startswith("transformers[kernels] @ git+https://")
    assert g.setup_env["NEED_FLASH_ATTN"] == "1" and g.setup_env["FLASH_ATTN"] == "kernels"


# ------------------------------------------------------------------ chat template, prompt
def test_system_prompt_is_the_originals() -> None:
    o = opts(answer_tag="<answer>", answer_end_tag="</answer>")
    assert system_prompt(o) == (
        "You are a helpful AI Assistant that provides well-reasoned and detailed responses. "
        "First reason inside <think> and </think>. "
        "Then provide the final answer inside <answer> and </answer>."
    )
    bare = opts(reasoning_tag="", reasoning_end_tag="")
    assert system_prompt(bare).endswith(
        "First think step by step. Then provide the final answer directly after thinking."
    )


def test_chat_template_from_file_and_string(tmp_path: Path) -> None:
    file = tmp_path / "t.jinja"
    file.write_text("{{ messages[0]['content'] }}")
    assert go(chat_template=str(file)).recipe["chat_template"] == file.read_text()
    assert go(chat_template="{{ 'x' }}").recipe["chat_template"] == "{{ 'x' }}"
    with pytest.raises(ConfigError, match="no such file"):
        go(chat_template=str(tmp_path / "missing.jinja"))
    with pytest.raises(ConfigError, match="neither an existing file"):
        go(chat_template="chatml please")


def test_default_template_only_when_the_model_has_none() -> None:
    assert "chat_template" not in go().recipe
    injected = go(model=replace(MODEL, has_chat_template=False))
    assert injected.recipe["chat_template"] == CHATML_DEFAULT
    trl = go(model=replace(MODEL, has_chat_template=False), trainer="trl")
    assert json.loads(trl.files["thinnka_train.json"])["chat_template"] == CHATML_DEFAULT


def test_gemma_style_template_folds_the_system_prompt() -> None:
    gemma = (
        "{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
    )
    r = go(chat_template=gemma)
    assert "system_prompt" not in r.recipe
    assert json.loads(r.files["thinnka_train.json"])["fold_system_prompt"] is True
    assert r.command[4].endswith("thinnka_openr1.py")
    # The wrapper is an implementation detail: the entry point shown is Open R1's own.
    assert r.entry_command[4] == "/opt/open-r1/src/open_r1/grpo.py"
    assert r.training.wrapper == "thinnka_openr1.py"
    assert "folds the system prompt" in (r.training.why_wrapper or "")


# ------------------------------------------------------------------ env file, imports
def test_env_file_round_trips_through_bash(tmp_path: Path) -> None:
    values = {
        "PLAIN": "abc",
        "SPACES": "a b  c",
        "QUOTES": 'it\'s "quoted"',
        "SHELL": "$(touch pwned) `touch pwned2` ${HOME}",
        "LINES": "peft==0.15.2\nbitsandbytes>=0.43.2",
        "EMPTY": "",
    }
    env_file = tmp_path / "x.env"
    env_file.write_text(write_env_file(values))
    script = "set -a; . ./x.env; set +a; " + "; ".join(f"printf '%s\\0' \"${k}\"" for k in values)
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, check=True)
    assert out.stdout.split(b"\0")[:-1] == [v.encode() for v in values.values()]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    with pytest.raises(ValueError):
        write_env_file({"bad-key": "x"})


def test_rendering_imports_no_ml_library() -> None:
    code = (
        "import sys, thinnka.rendering, thinnka.planning.schema as s; s.load_schema('trl', 'grpo');"
        "print(','.join(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ------------------------------------------------------------------ rewards
def test_reward_names_are_checked_against_the_trainers_registry() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'accuracy_reward'"):
        go(trainer="trl", overrides=sets("reward_funcs=[accuracy]"))
    with pytest.raises(ConfigError, match="Did you mean 'accuracy'"):
        go(overrides=sets("reward_funcs=[acuracy]"))


def test_dotted_rewards_under_openr1_use_the_wrapper_and_ship_thinnkas_module() -> None:
    tags = {"answer_tag": "<answer>", "answer_end_tag": "</answer>"}
    # Without evaluation (which needs the wrapper's scoring) Open R1's own script runs.
    plain = go(**tags, eval_fraction=0.0)
    assert plain.recipe["reward_funcs"] == ["accuracy", "format", "tag_count"]
    assert plain.command[4] == "/opt/open-r1/src/open_r1/grpo.py"
    assert "thinnka_rewards.py" not in plain.files
    scored = go(**tags)
    assert scored.command[4].endswith("thinnka_openr1.py")
    assert "thinnka_rewards.py" not in scored.files
    mixed = go(**tags, overrides=sets("reward_funcs=[accuracy, thinnka_rewards.format_reward]"))
    assert mixed.command[4].endswith("thinnka_openr1.py")
    assert "thinnka_rewards.py" in mixed.files and "thinnka_rewards.json" in mixed.files
    assert mixed.recipe["reward_weights"] == [1.0, 1.0]  # follows the new length
    with pytest.raises(ConfigError, match="one weight per reward"):
        go(overrides=sets("reward_funcs=[accuracy]", "reward_weights=[1.0, 2.0]"))


def test_use_vllm_from_set_gets_an_explicit_mode() -> None:
    r = go(use_vllm=False, overrides=sets("use_vllm=true"))
    assert r.recipe["vllm_mode"] == "colocate"
