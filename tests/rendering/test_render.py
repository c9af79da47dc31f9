"""Golden tests of ``thinnka.rendering.run_files``: one YAML file per mode × trainer × option.

Each golden file under tests/golden/rendering/ holds everything ``render`` decides (recipe,
accelerate config, commands, setup values, notes, the generated text files). Regenerate with
``THINNKA_UPDATE_GOLDEN=1 pytest tests/rendering/test_render.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from thinnka.options import RunOptions, validate
from thinnka.planning.facts import ModelContext, RemotePaths
from thinnka.rendering import Rendered, render, script_text

GOLDEN = Path(__file__).parents[1] / "golden" / "rendering"
UPDATE = os.environ.get("THINNKA_UPDATE_GOLDEN") == "1"
# Files that are verbatim copies of recipes/scripts: checked for identity, not stored.
_SCRIPTS = {
    "thinnka_trl_train.py",
    "thinnka_openr1.py",
    "thinnka_rewards.py",
    "thinnka_eval.py",
    "serve_and_train.py",
    "merge.py",
}

REPO = "Qwen/Qwen2.5-1.5B-Instruct"
HUB = "me/Qwen2.5-1.5B-Instruct-thinnka"


def paths(trainer: str) -> RemotePaths:
    venv = "/opt/thinnka-trl-venv" if trainer == "trl" else "/opt/openr1-venv"
    return RemotePaths(
        run_dir="/workspace/thinnka/run-0001",
        output_dir="/workspace/models/me-Qwen2.5-1.5B-Instruct-thinnka",
        venv=venv,
        hf_home="/workspace/.cache/huggingface",
    )


def model(**changes: Any) -> ModelContext:
    base = ModelContext(hub_model_id=HUB, has_chat_template=True, transformers_version="4.52.3")
    return replace(base, **changes)


def snapshot(r: Rendered) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for name, text in r.files.items():
        if name in _SCRIPTS:
            assert text == script_text(name), f"{name} is not the shipped script"
            files[name] = "<recipes/scripts copy>"
        elif name.endswith(".yaml"):
            files[name] = yaml.safe_load(text)
        elif name.endswith(".json"):
            files[name] = json.loads(text)
        else:
            files[name] = text
    # recipe.yaml and accelerate.yaml must be exactly what the mappings say.
    assert files.pop("recipe.yaml") == r.recipe
    assert files.pop("accelerate.yaml") == r.accelerate
    return {
        "training": r.training.to_json(),
        "recipe": r.recipe,
        "accelerate": r.accelerate,
        "entry_command": r.entry_command,
        "command": r.command,
        "server_command": r.server_command,
        "merge_command": r.merge_command,
        "setup_script": r.setup_script,
        "setup_env": r.setup_env,
        "merge": r.merge,
        "transformers_spec": r.transformers_spec,
        "notes": r.notes,
        "files": files,
    }


def _custom_tags() -> dict[str, Any]:
    return {
        "reasoning_tag": "<reasoning>",
        "reasoning_end_tag": "</reasoning>",
        "answer_tag": "<final>",
        "answer_end_tag": "</final>",
    }


CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (RunOptions changes, ModelContext changes)
    "grpo_colocate": ({}, {}),
    "grpo_colocate_4gpu": ({"gpu_count": 4}, {}),
    "grpo_server_4gpu": ({"gpu_count": 4, "vllm_mode": "server"}, {}),
    "grpo_no_vllm": ({"gpu_count": 2, "use_vllm": False}, {}),
    "grpo_shard_model": ({"gpu_count": 4, "shard_model": True}, {}),
    "grpo_builtin_tags": ({"answer_tag": "<answer>", "answer_end_tag": "</answer>"}, {}),
    "grpo_custom_tags": (_custom_tags(), {}),
    "grpo_no_tags": ({"reasoning_tag": "", "reasoning_end_tag": ""}, {}),
    "grpo_dataset_fraction": ({"dataset_fraction": 0.25, "dataset_seed": 7, "max_steps": 50}, {}),
    "grpo_chat_template_injected": ({}, {"has_chat_template": False}),
    "grpo_gemma_fold": ({"repo_id": "google/gemma-2-2b-it"}, {"system_role_supported": False}),
    "grpo_overrides": (
        {
            "overrides": (
                ("learning_rate", "2e-5"),
                ("beta", "0.0"),
                ("use_liger_kernel", "false"),
                ("lr_scheduler_kwargs", "{min_lr_rate: 0.05}"),
            )
        },
        {},
    ),
    "sft_qlora": ({"sft": True}, {}),
    "sft_lora_bf16": ({"sft": True, "overrides": (("load_in_4bit", "false"),)}, {}),
    "sft_shard_model": ({"sft": True, "shard_model": True, "gpu_count": 4}, {}),
    "sft_merge_model": ({"sft": True, "merge_model": True, "gpu_count": 2}, {}),
    "sft_report_to_wandb": ({"sft": True, "report_to": "wandb"}, {}),
    "sft_dataset_fraction": ({"sft": True, "dataset_fraction": 0.5}, {}),
    "sft_chat_template_injected": ({"sft": True}, {"has_chat_template": False}),
    "sft_gemma_fold": (
        {"sft": True, "repo_id": "google/gemma-2-2b-it"},
        {"system_role_supported": False},
    ),
    "sft_flash_attention": ({"sft": True, "attn_implementation": "flash_attention_2"}, {}),
    "sft_overrides": (
        {
            "sft": True,
            "overrides": (
                ("lora_r", "64"),
                ("lora_target_modules", "q_proj,v_proj"),
                ("packing", "true"),
                ("torch_dtype", "float16"),
            ),
        },
        {},
    ),
    "sft_skip_setup": ({"sft": True, "skip_setup": True}, {}),
    # A local data set: the recipe reads the folder it is uploaded to, the card names no
    # Hub data set; an eval data set of its own replaces the held-out share.
    "sft_local_data": (
        {
            "sft": True,
            "dataset_name": "",
            "dataset_path": "/home/me/data/chats.jsonl",
            "eval_dataset_path": "/home/me/data/eval.jsonl",
            "merge_model": True,
        },
        {},
    ),
    "grpo_eval_off": ({"eval_fraction": 0.0}, {}),
    "grpo_eval_hub_dataset": ({"eval_dataset_name": "me/math-eval"}, {}),
    "sft_custom_deps_debug": (
        {
            "sft": True,
            "custom_dependencies": ("liger-kernel>=0.5", "einops"),
            "debug_remote": True,
            "trust_remote_code": True,
            "transformers_version": "4.53.2",
        },
        {},
    ),
}
# The trl trainer spells some keys differently; its --set cases use its names.
_TRL_CHANGES = {
    "grpo_overrides": {
        "overrides": (
            ("learning_rate", "2e-5"),
            ("beta", "0.0"),
            ("lr_scheduler_kwargs", "{min_lr_rate: 0.05}"),
        )
    },
    "sft_overrides": {
        "overrides": (
            ("lora_r", "64"),
            ("lora_target_modules", "q_proj,v_proj"),
            ("packing", "true"),
            ("dtype", "float16"),
        )
    },
    "sft_custom_deps_debug": {"transformers_version": "5.16.1"},
}


def _render(name: str, trainer: str) -> Rendered:
    option_changes, model_changes = CASES[name]
    extra = _TRL_CHANGES.get(name, {}) if trainer == "trl" else {}
    values: dict[str, Any] = {"repo_id": REPO, "trainer": trainer, **option_changes, **extra}
    options = validate(RunOptions(**values))
    return render(options, model(**model_changes), paths(trainer))


@pytest.mark.parametrize("trainer", ["openr1", "trl"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, trainer: str) -> None:
    got = snapshot(_render(name, trainer))
    path = GOLDEN / f"{trainer}_{name}.yaml"
    text = yaml.safe_dump(got, sort_keys=False, allow_unicode=True, width=100)
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} is missing; run with THINNKA_UPDATE_GOLDEN=1 to create it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(text), (
        f"{path.name} differs from the rendering; if the change is intended, rerun with "
        "THINNKA_UPDATE_GOLDEN=1 and review the diff"
    )


def test_no_stale_golden_files() -> None:
    expected = {f"{t}_{n}.yaml" for t in ("openr1", "trl") for n in CASES}
    present = {p.name for p in GOLDEN.glob("*.yaml")}
    assert present <= expected, f"golden files without a case: {sorted(present - expected)}"


def test_render_is_deterministic() -> None:
    assert snapshot(_render("grpo_server_4gpu", "trl")) == snapshot(
        _render("grpo_server_4gpu", "trl")
    )
