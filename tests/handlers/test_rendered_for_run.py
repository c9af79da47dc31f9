"""``rendered_for_run``: install, train and push of one run share one rendering."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from thinnka.handlers.base import rendered_for_run
from thinnka.options import RunOptions, validate
from thinnka.planning.facts import GateFacts
from thinnka.settings import load_settings
from thinnka.step import StepContext

GATE = GateFacts(
    repo_id="org/tiny",
    hub_model_id="someone/tiny-sft-thinnka",
    user="someone",
    gated=False,
    has_chat_template=True,
    system_role_supported=True,
    transformers_version="5.17.0",
    model_type="qwen2",
    files=[("config.json", 700), ("model.safetensors", 2_000_000)],
    safetensors_total=1_000_000,
    safetensors_parameters={"BF16": 1_000_000},
    config={"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
            "vocab_size": 1000, "max_position_embeddings": 2048},
)  # fmt: skip


def _ctx(tmp_path: Path, run_id: str, options: RunOptions) -> StepContext:
    settings = load_settings(environ={"THINNKA_STATE_DIR": str(tmp_path)}, cwd=tmp_path)
    run = SimpleNamespace(id=run_id, options=options, plan={"gate": GATE.to_json()})
    return cast(StepContext, SimpleNamespace(run=run, settings=settings))


def test_one_run_is_rendered_once(tmp_path: Path) -> None:
    options = validate(RunOptions(repo_id="org/tiny", sft=True))
    first = rendered_for_run(_ctx(tmp_path, "r-one", options))
    again = rendered_for_run(_ctx(tmp_path, "r-one", options))
    assert again[1] is first[1] and again == first


@pytest.mark.parametrize(
    "change",
    [{"run_id": "r-two"}, {"options": {"max_steps": 7}}],
    ids=["another run", "other options"],
)
def test_other_inputs_are_rendered_anew(tmp_path: Path, change: dict[str, Any]) -> None:
    options = validate(RunOptions(repo_id="org/tiny", sft=True))
    paths, rendered = rendered_for_run(_ctx(tmp_path, "r-one", options))
    other_options = dataclasses.replace(options, **change.get("options", {}))
    other_paths, other = rendered_for_run(
        _ctx(tmp_path, change.get("run_id", "r-one"), other_options)
    )
    assert other is not rendered
    if "run_id" in change:  # the files go to the other run's folder
        assert other_paths.run_dir != paths.run_dir
        assert f"{other_paths.run_dir}/recipe.yaml" in other.command
    else:
        assert other.recipe["max_steps"] == 7 != rendered.recipe.get("max_steps")
