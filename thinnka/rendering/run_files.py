"""``render``: options + model facts + pod paths → everything a training run uploads and runs.

Pure: no network, no clock, no randomness, so every pipeline step can re-derive it and
golden files can pin it. Every decision (method, quantization, ZeRO stage, vLLM mode,
processes, transformers, launcher) is made once, by ``plan_training``
(``thinnka/planning/training.py``); this module only writes the plan down: template →
method block → --set overrides → the plan's vLLM/batch keys → whitelist check → files.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml

from thinnka.errors import ConfigError
from thinnka.planning.chat import system_prompt
from thinnka.planning.datarules import eval_settings
from thinnka.planning.facts import ModelContext, RemotePaths
from thinnka.planning.rewards import MODULE, check_rewards
from thinnka.planning.schema import load_schema
from thinnka.planning.training import TrainingPlan, plan_training
from thinnka.rendering import launch
from thinnka.rendering.card import merge_settings, model_card
from thinnka.rendering.recipe import apply_overrides, apply_plan, base_recipe, require_known
from thinnka.rendering.rendered import Rendered
from thinnka.rendering.setup_env import SetupFacts, setup_values
from thinnka.resources import resource_dir

if TYPE_CHECKING:
    from thinnka.options import RunOptions

__all__ = ["render", "script_text"]


def script_text(name: str) -> str:
    """The text of a file in recipes/scripts."""
    return (resource_dir("recipes") / "scripts" / name).read_text()


def _dump(data: Any) -> str:
    text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return text


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _train_settings(options: RunOptions, plan: TrainingPlan, run_dir: str) -> dict[str, Any]:
    """thinnka_train.json: what thinnka's launch wrappers add to the trainer's own script."""
    grpo, chat = plan.grpo, plan.chat
    settings: dict[str, Any] = {"mode": options.mode, "fold_system_prompt": chat.fold_system}
    evaluation = eval_settings(options, run_dir)
    if evaluation is not None or options.dataset_path:
        settings.update(eval=evaluation, local_data=bool(options.dataset_path))
    if plan.stack.recipe_system_prompt:
        # The recipe carries the prompt keys; the wrapper only needs the folded text.
        settings["system_prompt"] = system_prompt(options) if grpo and chat.fold_system else None
        return settings
    settings.update(
        prompt_column=options.dataset_prompt_column if grpo else None,
        system_prompt=system_prompt(options) if grpo else None,
        max_prompt_length=options.max_prompt_length if grpo else None,
        chat_template=chat.template,
        dataset_fraction=options.dataset_fraction,
        dataset_seed=options.dataset_seed,
    )
    return settings


def _plan_notes(options: RunOptions, plan: TrainingPlan, recipe: dict[str, Any]) -> list[str]:
    notes = list(plan.notes)
    if plan.grpo:
        assert plan.rewards is not None
        touched = plan.overrides.values
        notes += check_rewards(recipe, plan.stack, weights_set="reward_weights" in touched)
        names = ", ".join(str(n) for n in recipe.get("reward_funcs") or [])
        notes.append(
            plan.rewards.note if "reward_funcs" not in touched else f"Rewards (--set): {names}."
        )
    notes.append(plan.transformers.reason)
    if options.report_to == "wandb":
        notes.append(
            "report_to: [wandb]; WANDB_API_KEY reaches the pod as a 0600 file, never "
            "as an argument."
        )
    if not plan.stack.recipe_dataset_mixture and options.dataset_fraction < 1:
        notes.append(
            f"--dataset-fraction {options.dataset_fraction}: thinnka's launcher shuffles the "
            f"train split with seed {options.dataset_seed} and keeps that share (TRL's own "
            "`datasets` mixture cannot subsample a single data set)."
        )
    return notes


def render(
    options: RunOptions,
    model: ModelContext,
    paths: RemotePaths,
    plan: TrainingPlan | None = None,
) -> Rendered:
    """Everything the pipeline uploads and runs; ``ConfigError`` for what cannot work.

    ``plan`` is the run's ``plan_training`` result (made here when not given).
    """
    plan = plan or plan_training(options, model)
    stack = plan.stack
    schema = load_schema(stack.template, options.mode)
    recipe = base_recipe(options, model, paths, plan)
    apply_overrides(recipe, plan)
    apply_plan(recipe, plan)
    notes = _plan_notes(options, plan, recipe)
    require_known(recipe, schema)

    merge = options.merge_model
    adapter_repo = str(recipe.get("hub_model_id", "")).split("/")[-1]
    if merge and len(adapter_repo) > 96:
        raise ConfigError(
            f"--merge-model pushes the adapter to {recipe['hub_model_id']}, a name longer than "
            "the Hub's 96 characters; choose a shorter --hub-model-id."
        )

    files: dict[str, str] = {}
    accelerate = launch.accelerate_config(plan.accelerate_config, plan.processes, recipe)
    if plan.nodes > 1:  # each node's rank and rendezvous: rendering/nodes.py, once known
        accelerate["num_machines"] = plan.nodes
    train = launch.train_argv(paths, plan)
    command, server_command = train, None
    if plan.vllm_mode == "server":
        command, server_command, serve = launch.server_files(
            paths,
            model=str(recipe["model_name_or_path"]),
            revision=str(recipe.get("model_revision", "main")),
            gpu_count=options.gpu_count,
            max_model_len=plan.prompt_length + plan.completion_length,
            trust_remote_code=bool(recipe.get("trust_remote_code")),
            train=train,
        )
        files["serve_and_train.py"] = script_text("serve_and_train.py")
        files["serve_and_train.json"] = _json(serve)
    files["recipe.yaml"] = _dump(recipe)
    files["accelerate.yaml"] = _dump(accelerate)
    if plan.wrapper is not None:
        files["thinnka_train.json"] = _json(_train_settings(options, plan, paths.run_dir))
        files[plan.wrapper] = script_text(plan.wrapper)
        if eval_settings(options, paths.run_dir) is not None:
            files["thinnka_eval.py"] = script_text("thinnka_eval.py")
    if any(str(n).startswith(f"{MODULE}.") for n in recipe.get("reward_funcs") or []):
        assert plan.rewards is not None
        files["thinnka_rewards.py"] = script_text("thinnka_rewards.py")
        files["thinnka_rewards.json"] = _json(plan.rewards.config)

    merge_command = None
    if merge:
        files["MODEL_CARD.md"] = model_card(
            options, model, recipe, trainer_label=stack.label, stage=plan.zero_stage
        )
        files["merge.py"] = script_text("merge.py")
        files["merge.json"] = _json(
            merge_settings(options, model, paths, recipe, plan.chat.template)
        )
        merge_command = ["python", f"{paths.run_dir}/merge.py", f"{paths.run_dir}/merge.json"]
        notes.append(
            f"--merge-model: the adapter is pushed to {recipe['hub_model_id']}; after training "
            f"merge.py merges it into the bf16 base and pushes the merged model to "
            f"{model.hub_model_id}."
        )

    return Rendered(
        recipe=recipe,
        accelerate=accelerate,
        command=command,
        entry_command=launch.entry_argv(paths, plan),
        files=files,
        setup_env=setup_values(SetupFacts.of(plan, options, paths)),
        setup_script="check_image.sh" if options.setup_skipped else stack.setup_script,
        notes=notes,
        transformers_spec=plan.transformers.spec,
        merge=merge,
        merge_command=merge_command,
        server_command=server_command,
        training=plan,
    )
