"""The training recipe: a YAML template from ``recipes/templates`` filled from the options.

Templates are data: ``recipe`` holds the keys in the order they are written (null = filled
here, or left out when it stays null) and ``blocks`` holds groups merged in when they apply
(the training method the plan chose: qlora, lora or full; the vLLM server address).
``--set`` overrides come last, then what the plan decided about vLLM and the batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import yaml

from thinnka.errors import ConfigError
from thinnka.planning.checkpoints import checkpoint_cadence
from thinnka.planning.datarules import hub_dataset
from thinnka.planning.schema import Schema, check_keys
from thinnka.rendering.launch import SERVER_HOST, SERVER_PORT
from thinnka.resources import resource_dir

if TYPE_CHECKING:
    from thinnka.options import RunOptions
    from thinnka.planning.facts import ModelContext, RemotePaths
    from thinnka.planning.training import TrainingPlan

__all__ = [
    "Template",
    "apply_overrides",
    "apply_plan",
    "base_recipe",
    "load_template",
    "require_known",
]
_VLLM_KEYS = ("vllm_mode", "vllm_max_model_length", "vllm_server_host", "vllm_server_port")
# 4-bit-only keys of the qlora block, dropped when the plan loads the base in 8 bits.
_FOUR_BIT_KEYS = ("load_in_4bit", "use_bnb_nested_quant", "bnb_4bit_quant_type")


@dataclass(frozen=True)
class Template:
    recipe: dict[str, Any]
    blocks: dict[str, dict[str, Any]]


@lru_cache(maxsize=8)
def _read_template(trainer: str, mode: str) -> Template:
    path = resource_dir("recipes") / "templates" / f"{trainer}_{mode}.yaml"
    data = yaml.safe_load(path.read_text())
    return Template(data["recipe"], data.get("blocks") or {})


def load_template(trainer: str, mode: str) -> Template:
    """A fresh copy: callers fill it in place."""
    return copy.deepcopy(_read_template(trainer, mode))


def _report_to(options: RunOptions) -> str | list[str]:
    return "none" if options.report_to == "none" else [options.report_to]


def base_recipe(
    options: RunOptions, model: ModelContext, paths: RemotePaths, plan: TrainingPlan
) -> dict[str, Any]:
    """The recipe before overrides: template order, nulls filled, unset keys dropped."""
    stack, chat, merge = plan.stack, plan.chat, options.merge_model
    template = load_template(stack.template, options.mode)
    recipe = template.recipe
    # Merged runs push the adapter next to the merged model, never into the same repo (the
    # original merged into the repo that already held the adapter, mixing the two).
    hub_id = f"{model.hub_model_id}-adapter" if merge else model.hub_model_id
    recipe.update(
        model_name_or_path=options.repo_id,
        attn_implementation=options.attn_implementation,
        trust_remote_code=options.trust_remote_code,
        dataset_name=hub_dataset(options, paths.run_dir),
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        hub_model_id=hub_id,
        num_train_epochs=options.num_train_epochs,
        output_dir=paths.output_dir,
        per_device_train_batch_size=options.per_device_train_batch,
        report_to=_report_to(options),
    )
    recipe.update(template.blocks[plan.method])
    if plan.quantization == "8bit":
        for key in _FOUR_BIT_KEYS:
            recipe.pop(key, None)
    if options.sft:
        recipe["max_length"] = options.max_prompt_length + options.max_completion_length
    else:
        names = plan.rewards.names if plan.rewards else ()
        vllm = plan.vllm_mode
        recipe.update(
            use_vllm=vllm is not None,
            vllm_mode=vllm,
            max_completion_length=options.max_completion_length,
            num_generations=plan.num_generations,
            reward_funcs=list(names),
            reward_weights=[1.0] * len(names),
        )
        if stack.recipe_system_prompt:
            recipe.update(
                dataset_prompt_column=options.dataset_prompt_column,
                # Folded runs carry the text in the user turn (thinnka_openr1.py), not here.
                system_prompt=None if chat.fold_system else _system_prompt(options),
                max_prompt_length=options.max_prompt_length,
            )
        elif vllm == "colocate" and stack.vllm_max_model_length:
            # TRL 1.13 otherwise sizes the colocated engine for the model's full context.
            recipe["vllm_max_model_length"] = (
                options.max_prompt_length + options.max_completion_length
            )
    if options.max_steps > 0:
        recipe["max_steps"] = options.max_steps
    # Checkpoints that outlive the pod (the Hub's last-checkpoint/ or the network volume),
    # so a lost pod's successor resumes from them; --set keys still win (applied later).
    recipe.update(checkpoint_cadence(options).recipe_keys())
    if chat.template is not None and stack.recipe_system_prompt:
        recipe["chat_template"] = chat.template
    if options.dataset_fraction < 1 and stack.recipe_dataset_mixture:
        # Open R1 subsamples each mixture entry to weight × rows after a seeded shuffle; it
        # prefers the mixture when dataset_name is also set (kept, as the original did).
        recipe["dataset_mixture"] = {
            "datasets": [
                {
                    "id": hub_dataset(options, paths.run_dir),
                    "config": None,
                    "split": "train",
                    "weight": options.dataset_fraction,
                }
            ],
            "seed": options.dataset_seed,
        }
    return {k: v for k, v in recipe.items() if v is not None}


def _system_prompt(options: RunOptions) -> str:
    from thinnka.planning.chat import system_prompt

    return system_prompt(options)


def apply_overrides(recipe: dict[str, Any], plan: TrainingPlan) -> None:
    """Apply the merged --set values (``typed_overrides``); null removes the key."""
    for key, value in plan.overrides.values.items():
        if value is None:
            recipe.pop(key, None)  # null means "the trainer's default"
        else:
            recipe[key] = value


def apply_plan(recipe: dict[str, Any], plan: TrainingPlan) -> None:
    """Write what the plan decided over the template and the overrides: the GRPO batch and
    vLLM keys (the plan may have turned vLLM off, or picked a mode for --set use_vllm)."""
    if not plan.grpo:
        return
    recipe["num_generations"] = plan.num_generations
    if plan.vllm_mode is None:
        recipe["use_vllm"] = False
        for key in _VLLM_KEYS:
            recipe.pop(key, None)
        return
    recipe["use_vllm"], recipe["vllm_mode"] = True, plan.vllm_mode
    if plan.vllm_mode == "server":
        recipe.setdefault("vllm_server_host", SERVER_HOST)
        recipe.setdefault("vllm_server_port", SERVER_PORT)
    elif plan.stack.vllm_max_model_length:
        # TRL 1.13 otherwise sizes the colocated engine for the model's full context.
        recipe.setdefault("vllm_max_model_length", plan.prompt_length + plan.completion_length)


def require_known(recipe: dict[str, Any], schema: Schema) -> None:
    """Every key of the final recipe must be one the trainer's parser takes."""
    try:
        check_keys(recipe, schema, origin="rendered recipe")
    except ConfigError as exc:  # only reachable when a template drifts from the schema
        raise ConfigError(
            f"{exc} (template recipes/templates/{schema.trainer}_{schema.mode}.yaml is out of date)"
        ) from None
