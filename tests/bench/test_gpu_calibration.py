"""bench/gpu_calibration.py on the CPU, at tiny sizes, so the GPU script cannot rot.

Both modes run as a GPU machine would run them (the script as a subprocess, its JSON file
read back): the calibration trains every method with TRL's SFTTrainer from the recipe
thinnka renders, a point the estimate says cannot fit is skipped without being built, and
an out-of-memory error (injected: a CPU never raises CUDA's) is recorded and survived; the
smoke runs thinnka_trl_train.py under `accelerate launch` for SFT and GRPO.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_calibration.py"
QWEN2_05B_PARAMETERS = 494_032_768  # Qwen/Qwen2-0.5B's published count


def _bitsandbytes_imports() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # what the script itself checks: any failure means no QLoRA
        return False
    return True


def _run(tmp_path: Path, *args: str, timeout: float) -> dict[str, Any]:
    output = tmp_path / "result.json"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--output", str(output),
         "--work-dir", str(tmp_path / "work"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    data: dict[str, Any] = json.loads(output.read_text())
    assert data["finished"] is True
    assert data["device"]["type"] == "cpu"
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "python"):
        assert data["versions"][name], name
    return data


@pytest.mark.timeout(300)
def test_calibration_measures_skips_and_survives_oom(tmp_path: Path) -> None:
    data = _run(
        tmp_path,
        "--sizes", "tiny,0.5b", "--modes", "full,lora,qlora", "--seq-lens", "32",
        "--batches", "1,2", "--steps", "2",
        # 2.5 GB: the tiny model's estimate (2 GB of it CUDA context) fits, no 0.5B does.
        "--memory-gb", "2.5",
        "--inject-oom", "tiny/lora/32/2",
        timeout=280,
    )  # fmt: skip
    points = {p["id"]: p for p in data["points"]}
    assert len(points) == 12  # 2 sizes x 3 methods x 1 length x 2 batches, in that order
    assert [p["id"] for p in data["points"]][:2] == ["tiny/full/32/1", "tiny/full/32/2"]
    qlora = _bitsandbytes_imports()
    assert data["bitsandbytes"]["importable"] is qlora

    for point in points.values():
        method = point["method"]
        # The estimate is thinnka's for the recipe it renders, present for every point.
        need = point["estimate"]
        assert need["total_bytes"] > 2 * 10**9 and need["required_gb"] >= need["total_bytes"] / 1e9
        assert need["breakdown_bytes"]["CUDA context and NCCL"] == 2 * 10**9
        assert point["plan"].startswith("SFT, ") and point["plan"].endswith("1 training process")
        recipe = point["recipe"]
        assert (
            recipe["max_length"] == 32 and recipe["per_device_train_batch_size"] == point["batch"]
        )
        assert recipe["gradient_checkpointing"] is True and recipe["dtype"] == "bfloat16"
        if method == "full":
            assert recipe["use_peft"] is False
        else:
            assert (recipe["lora_r"], recipe["lora_target_modules"]) == (16, "all-linear")
            assert recipe.get("load_in_4bit", False) is (method == "qlora")

    for size in ("tiny", "0.5b"):
        assert {p["parameters"] for p in points.values() if p["size"] == size} == {
            35_104 if size == "tiny" else QWEN2_05B_PARAMETERS
        }

    # Every 0.5B point is skipped by the estimate, before a model is built.
    for point in (p for p in points.values() if p["size"] == "0.5b"):
        assert point["status"] == "skipped", point
        assert point["estimate"]["fits_device"] is False
        assert "estimate needs" in point["reason"] and point["measured"] is None
    assert not (tmp_path / "work" / "models" / "qwen2-0.5b").exists()

    oom = points["tiny/lora/32/2"]
    assert oom["status"] == "oom" and "injected" in oom["reason"]
    assert "steps" not in oom

    ran = [p for p in points.values() if p["size"] == "tiny" and p["id"] != oom["id"]]
    for point in ran:
        if point["method"] == "qlora" and not qlora:
            assert point["status"] == "skipped" and "bitsandbytes" in point["reason"]
            continue
        assert point["status"] == "ok", point
        assert point["steps"] == 2 and len(point["losses"]) == 2
        assert all(math.isfinite(x) and x > 0 for x in point["losses"])
        assert point["optim"] and point["estimate"]["fits_device"] is True
        measured = point["measured"]
        assert measured["max_memory_reserved"] is None and "CPU" in measured["reason"]
        if point["method"] == "full":
            assert point["trainable_parameters"] == point["parameters"]
        else:
            # PEFT's all-linear adapters are the ones the estimate counts (16 bytes each).
            lora_bytes = point["estimate"]["breakdown_bytes"][
                "LoRA adapters (weights, grads, Adam)"
            ]
            assert lora_bytes == 16 * point["trainable_parameters"]
        assert point["base_loaded_in_4bit"] is (point["method"] == "qlora")
    # The points after the injected OOM still ran: one error does not end the sweep.
    assert points["tiny/qlora/32/1"]["status"] == ("ok" if qlora else "skipped")


# About 60 s on an idle 2-core machine; the margins are for a busy one.
@pytest.mark.timeout(480)
def test_smoke_runs_thinnka_training_script(tmp_path: Path) -> None:
    data = _run(tmp_path, "--smoke", "--smoke-size", "tiny", "--steps", "2", timeout=450)
    runs = {r["name"]: r for r in data["runs"]}
    assert list(runs) == ["sft_lora_bf16", "grpo_no_vllm", "grpo_vllm_colocate"]
    assert data["vllm"]["importable"] is False

    sft, grpo = runs["sft_lora_bf16"], runs["grpo_no_vllm"]
    assert sft["plan"].startswith("SFT, LoRA adapters on a bf16 base")
    method = (
        "QLoRA (LoRA adapters on a 4-bit base)"
        if _bitsandbytes_imports()
        else "LoRA adapters on a bf16 base"
    )
    assert grpo["plan"].startswith(f"GRPO, {method}, transformers generation")
    for run in (sft, grpo):
        assert run["status"] == "ok", run["output_tail"]
        assert run["returncode"] == 0 and run["saved_model"] and run["said_saved"]
        # thinnka's own launcher, as a pod runs it, with the recipe it rendered.
        assert run["command"][:2] == ["accelerate", "launch"]
        assert run["command"][-3].endswith("thinnka_trl_train.py")
        assert run["recipe"]["max_steps"] == 2 and run["recipe"]["use_cpu"] is True
        assert Path(run["recipe"]["model_name_or_path"]).name == "qwen2-tiny"
        assert math.isfinite(run["train_metrics"]["train_loss"])
        assert (tmp_path / "work" / "runs" / run["name"] / "out").is_dir()

    assert runs["grpo_vllm_colocate"]["status"] == "skipped"
    assert "CUDA" in runs["grpo_vllm_colocate"]["reason"]
