"""The training recipe: a YAML template from ``recipes/templates`` filled from the options.

Templates are data: ``recipe`` holds the keys in the order they are written (null = filled
here, or left out when it stays null) and ``blocks`` holds groups merged in when they apply
(QLoRA or full fine-tuning for SFT, the vLLM server address). ``--set`` overrides come last.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import yaml

from thinnka.errors import ConfigError
from thinnka.rendering.schema import ALIASES, Schema, check_keys, coerce
from thinnka.resources import resource_dir

if TYPE_CHECKING:
    from thinnka.options import RunOptions
    from thinnka.rendering.chat import ChatDecision
    from thinnka.rendering.records import ModelContext, RemotePaths
    from thinnka.rendering.rewards_module import RewardPlan

__all__ = [
    "Template",
    "apply_overrides",
    "base_recipe",
    "load_template",
    "require_known",
    "resolve_override_keys",
]


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
    options: RunOptions,
    model: ModelContext,
    paths: RemotePaths,
    *,
    trainer: str,
    chat: ChatDecision,
    rewards: RewardPlan | None,
    merge: bool,
    num_generations: int | None,
) -> dict[str, Any]:
    """The recipe before overrides: template order, nulls filled, unset keys dropped."""
    template = load_template(trainer, options.mode)
    recipe = template.recipe
    # Merged runs push the adapter next to the merged model, never into the same repo (the
    # original mixed adapter and full weights in one repo, original-tool.md §8.6).
    hub_id = f"{model.hub_model_id}-adapter" if merge else model.hub_model_id
    recipe.update(
        model_name_or_path=options.repo_id,
        attn_implementation=options.attn_implementation,
        trust_remote_code=options.trust_remote_code,
        dataset_name=options.dataset_name,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        hub_model_id=hub_id,
        num_train_epochs=options.num_train_epochs,
        output_dir=paths.output_dir,
        per_device_train_batch_size=options.per_device_train_batch,
        report_to=_report_to(options),
    )
    if options.sft:
        recipe["max_length"] = options.max_prompt_length + options.max_completion_length
        block = template.blocks["full" if options.shard_model else "qlora"]
        recipe.update(block)
    else:
        assert rewards is not None and num_generations is not None
        recipe.update(
            use_vllm=options.vllm_enabled,
            vllm_mode=options.effective_vllm_mode,
            max_completion_length=options.max_completion_length,
            num_generations=num_generations,
            reward_funcs=list(rewards.names),
            reward_weights=[1.0] * len(rewards.names),
        )
        if trainer == "openr1":
            recipe.update(
                dataset_prompt_column=options.dataset_prompt_column,
                # Folded runs carry the text in the user turn (thinnka_openr1.py), not here.
                system_prompt=None if chat.fold_system else _system_prompt(options),
                max_prompt_length=options.max_prompt_length,
            )
        elif options.effective_vllm_mode == "colocate":
            # TRL 1.13 otherwise sizes the colocated engine for the model's full context.
            recipe["vllm_max_model_length"] = (
                options.max_prompt_length + options.max_completion_length
            )
    if options.max_steps > 0:
        recipe["max_steps"] = options.max_steps
    if chat.template is not None and trainer == "openr1":
        recipe["chat_template"] = chat.template
    if options.dataset_fraction < 1 and trainer == "openr1":
        # Open R1 subsamples each mixture entry to weight × rows after a seeded shuffle; it
        # prefers the mixture when dataset_name is also set (kept, as the original did).
        recipe["dataset_mixture"] = {
            "datasets": [
                {
                    "id": options.dataset_name,
                    "config": None,
                    "split": "train",
                    "weight": options.dataset_fraction,
                }
            ],
            "seed": options.dataset_seed,
        }
    return {k: v for k, v in recipe.items() if v is not None}


def _system_prompt(options: RunOptions) -> str:
    from thinnka.rendering.chat import system_prompt

    return system_prompt(options)


def resolve_override_keys(options: RunOptions, schema: Schema) -> list[tuple[str, str, str]]:
    """(given key, schema key, raw value) per --set; unknown keys raise with a suggestion."""
    aliases = ALIASES.get(schema.trainer, {})
    resolved: list[tuple[str, str, str]] = []
    unknown: dict[str, str] = {}
    for key, raw in options.overrides:
        target = aliases.get(key, key)
        if target in schema.keys:
            resolved.append((key, target, raw))
        else:
            unknown[key] = raw
    if unknown:
        check_keys(unknown, schema, origin="--set")
    return resolved


def apply_overrides(
    recipe: dict[str, Any], options: RunOptions, schema: Schema
) -> tuple[list[str], set[str]]:
    """Apply --set in order (last wins); returns (notes, keys the user set)."""
    notes: list[str] = []
    touched: set[str] = set()
    for given, key, raw in resolve_override_keys(options, schema):
        value = coerce(schema, key, raw)
        if given != key:
            notes.append(
                f"--set {given} is spelled {key} for the {schema.trainer} trainer; set {key}."
            )
        touched.add(key)
        if value is None:
            recipe.pop(key, None)  # null means "the trainer's default"
        else:
            recipe[key] = value
    return notes, touched


def require_known(recipe: dict[str, Any], schema: Schema) -> None:
    """Every key of the final recipe must be one the trainer's parser takes."""
    try:
        check_keys(recipe, schema, origin="rendered recipe")
    except ConfigError as exc:  # only reachable when a template drifts from the schema
        raise ConfigError(
            f"{exc} (template recipes/templates/{schema.trainer}_{schema.mode}.yaml is out of date)"
        ) from None
