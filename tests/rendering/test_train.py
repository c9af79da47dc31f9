"""Rendered TRL recipes train for real on CPU, and merge.py merges for real.

Each test renders a run with CPU overrides (``--set use_cpu=true --set bf16=false ...``),
writes ``Rendered.files`` into a run folder and runs ``Rendered.command`` there as the pod
would (``accelerate launch`` of thinnka_trl_train.py), offline, on the tiny Qwen2 model and
data sets of tests/world/tiny.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from thinnka.options import RunOptions, validate
from thinnka.planning.facts import ModelContext, RemotePaths
from thinnka.rendering import Rendered, render

SCRIPTS = Path(__file__).resolve().parents[2] / "recipes" / "scripts"

pytest.importorskip("trl")
pytest.importorskip("peft")
pytestmark = pytest.mark.slow

_CPU = (
    ("use_cpu", "true"),
    ("bf16", "false"),
    ("torch_dtype", "float32"),
    ("attn_implementation", "eager"),
    ("gradient_checkpointing", "false"),
    ("push_to_hub", "false"),
    ("report_to", "none"),
    ("save_strategy", "no"),
    ("max_steps", "2"),
    ("logging_steps", "1"),
)


@pytest.fixture(scope="module")
def tiny() -> Any:
    from tests.world.tiny import tiny_artifacts

    return tiny_artifacts()


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "WANDB"))}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),
        WANDB_MODE="disabled",
        PYTHONUNBUFFERED="1",
    )
    # `accelerate` must be the one of this interpreter's venv.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def _render_to(run_dir: Path, *, sets: tuple[tuple[str, str], ...], **options: Any) -> Rendered:
    # Local folders are no Hub ids, so validation refuses them as --set values: the recipe
    # is rendered for a Hub id and then pointed at the local model/data set, as a test only.
    local = {key: value for key, value in sets if value.startswith("/")}
    sets = tuple((key, value) for key, value in sets if key not in local)
    o = validate(
        RunOptions(
            repo_id="tiny-models/qwen2-chat",
            trainer="trl",
            overrides=_CPU + sets,
            per_device_train_batch=2,
            gradient_accumulation_steps=1,
            max_prompt_length=64,
            max_completion_length=16,
            **options,
        )
    )
    paths = RemotePaths(
        run_dir=str(run_dir),
        output_dir=str(run_dir / "out"),
        venv=sys.prefix,
        hf_home=str(run_dir / "hf"),
    )
    rendered = render(
        o, ModelContext(hub_model_id="thinnka-tester/tiny-out", has_chat_template=True), paths
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    ids = {"model_name_or_path": o.repo_id, "dataset_name": o.dataset_name}
    for name, text in rendered.files.items():
        for key, path in local.items():  # recipe, merge.json and card alike
            text = text.replace(ids[key], path)
        (run_dir / name).write_text(text)
    return rendered


def _launch(argv: list[str], run_dir: Path, env: dict[str, str], budget_s: float) -> float:
    started = time.monotonic()
    _launch_output(argv, run_dir, env, budget_s)
    return time.monotonic() - started


def _launch_output(argv: list[str], run_dir: Path, env: dict[str, str], budget_s: float) -> str:
    done = subprocess.run(
        argv, cwd=run_dir, env=env, capture_output=True, text=True, timeout=budget_s * 3
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout + done.stderr


@pytest.mark.timeout(240)
def test_trl_sft_lora_trains_then_merges(tiny: Any, tmp_path: Path) -> None:
    run = tmp_path / "run"
    rendered = _render_to(
        run,
        sft=True,
        merge_model=True,
        sets=(
            ("model_name_or_path", str(tiny.chat)),
            ("dataset_name", str(tiny.sft)),
            ("load_in_4bit", "false"),
            ("use_bnb_nested_quant", "false"),
            # Big enough that 2 steps move the adapter visibly past bf16 rounding.
            ("learning_rate", "0.05"),
        ),
    )
    assert rendered.accelerate["use_cpu"] is True and rendered.recipe["use_peft"] is True
    assert rendered.command[:2] == ["accelerate", "launch"]
    env = _offline_env(tmp_path)
    elapsed = _launch(rendered.command, run, env, 60)
    out = run / "out"
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    print(f"SFT LoRA: 2 steps in {elapsed:.1f} s")

    # The rendered merge step, with pushing switched off by merge.py's flag.
    assert rendered.merge_command is not None
    merge_s = _launch(
        [sys.executable, *rendered.merge_command[1:], "--no-push", "--no-base-card"], run, env, 60
    )
    merged = Path(json.loads((run / "merge.json").read_text())["merged_dir"])
    card = (merged / "README.md").read_text()
    assert card.startswith(f"---\nbase_model: {tiny.chat}\n")
    assert "**ZeRO Stage**: none" in card and "**Learning Rate**: 5.0e-02" in card
    _assert_merged_model_loads(merged, tiny.chat)
    print(f"merge: {merge_s:.1f} s")


def _assert_merged_model_loads(merged: Path, base: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(merged)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert model.dtype == torch.bfloat16
    original = AutoModelForCausalLM.from_pretrained(base).to(torch.bfloat16).state_dict()
    changed = [n for n, p in model.state_dict().items() if not torch.equal(p, original[n])]
    assert changed, "the merged weights equal the base: the adapter was not applied"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template
    ids = tokenizer("What is 1 + 1?", return_tensors="pt")
    with torch.no_grad():
        assert model(**ids).logits.shape[-1] == model.config.vocab_size


@pytest.mark.timeout(240)
def test_trl_grpo_trains_on_cpu(tiny: Any, tmp_path: Path) -> None:
    run = tmp_path / "run"
    rendered = _render_to(
        run,
        use_vllm=False,
        num_generations=2,
        sets=(
            ("model_name_or_path", str(tiny.chat)),
            ("dataset_name", str(tiny.grpo)),
            ("log_completions", "false"),
            # GRPO trains LoRA adapters; 4-bit loading needs a GPU, so a bf16-style base here.
            ("load_in_4bit", "false"),
        ),
    )
    assert rendered.recipe["num_generations"] == 2
    assert rendered.recipe["reward_funcs"][0] == "thinnka_rewards.accuracy_reward"
    assert rendered.training.method == "lora" and rendered.recipe["use_peft"] is True
    elapsed = _launch(rendered.command, run, _offline_env(tmp_path), 60)
    assert (run / "out" / "adapter_model.safetensors").exists()
    print(f"GRPO: 2 steps in {elapsed:.1f} s")


@pytest.mark.timeout(240)
def test_merge_pushes_to_the_hub(hub_env: Any, tmp_path: Path) -> None:
    """merge.py against the emulated Hub: base downloaded, merged model + card pushed."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hub = hub_env.hub
    base_dir = hub.artifacts.chat
    hub.upload(hub.models.chat, {"README.md": "---\nlicense: mit\n---\n# qwen2-chat\nTiny.\n"})
    adapter = tmp_path / "adapter"
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(adapter)

    o = validate(RunOptions(repo_id=hub.models.chat, sft=True, merge_model=True))
    target = f"{hub.user}/qwen2-merged"
    paths = RemotePaths(
        run_dir=str(tmp_path), output_dir=str(adapter), venv=sys.prefix, hf_home=str(hub_env.home)
    )
    rendered = render(o, ModelContext(hub_model_id=target, has_chat_template=True), paths)
    for name, text in rendered.files.items():
        (tmp_path / name).write_text(text)
    # Uploaded by install next to the rendered files on every pod (InstallHandler).
    shutil.copy(SCRIPTS / "thinnka_push.py", tmp_path / "thinnka_push.py")
    # One Hub hiccup each on creating the repo and on its commit: retried, not fatal. The
    # pause is what run.env holds for a --watchdog-grace of 5 s (grace/24).
    hub.inject_fault("/api/repos/create", 503, method="POST")
    hub.inject_fault(f"/api/models/{target}/commit/", 500, method="POST")
    env = dict(hub_env.env, HF_TOKEN=hub.tokens.write, THINNKA_PUSH_PAUSE_S="0.2")
    assert rendered.merge_command is not None
    said = _launch_output([sys.executable, *rendered.merge_command[1:]], tmp_path, env, 60)
    assert f"creating {target} failed (attempt 1 of 5)" in said, said[-2000:]
    assert f"pushing the merged model to {target} failed (attempt 1 of 5)" in said
    files = hub.files(target)
    assert "model.safetensors" in files and "tokenizer.json" in files
    card = files["README.md"].decode()
    assert card.startswith(f"---\nbase_model: {hub.models.chat}\n")
    assert f"## Base model card ({hub.models.chat})\n\n# qwen2-chat\nTiny." in card
    assert card.count("---\nlicense") == 0  # the base card's front matter is not mid-file
