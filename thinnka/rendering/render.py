"""``render``: options + model facts + pod paths → everything a training run uploads and runs.

Pure: no network, no clock, no randomness, so every pipeline step can re-derive it and
golden files can pin it. The order of decisions matters and is kept in one place here:
template → --set overrides → vLLM/QLoRA rules → placement (accelerate, ZeRO) → GRPO batch
rule → whitelist check → transformers choice → files and commands.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml

from thinnka.errors import ConfigError
from thinnka.rendering import launch
from thinnka.rendering.card import merge_settings, model_card
from thinnka.rendering.chat import ChatDecision, decide_chat, system_prompt
from thinnka.rendering.recipe import (
    apply_overrides,
    base_recipe,
    require_known,
    resolve_override_keys,
)
from thinnka.rendering.records import ModelContext, RemotePaths, Rendered
from thinnka.rendering.rewards_module import MODULE, RewardPlan, check_rewards, plan_rewards
from thinnka.rendering.rules import Placement, batch_rule, check_vllm, is_quantized, place
from thinnka.rendering.schema import coerce, load_schema
from thinnka.rendering.setup_env import SetupFacts, setup_values
from thinnka.rendering.versions import (
    OPENR1_STACK,
    TRL_PIN,
    TransformersChoice,
    choose_transformers,
)
from thinnka.resources import resource_dir

if TYPE_CHECKING:
    from thinnka.options import RunOptions

__all__ = ["render", "script_text", "validate_overrides"]

_SERVER_KEYS = {"vllm_server_host": launch.SERVER_HOST, "vllm_server_port": launch.SERVER_PORT}


def script_text(name: str) -> str:
    """The text of a file in recipes/scripts."""
    return (resource_dir("recipes") / "scripts" / name).read_text()


def validate_overrides(options: RunOptions) -> None:
    """Refuse unknown --set keys (with a "did you mean") and values of the wrong type."""
    schema = load_schema(options.trainer, options.mode)
    for _given, key, raw in resolve_override_keys(options, schema):
        coerce(schema, key, raw)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _vllm(
    options: RunOptions, recipe: dict[str, Any], trainer: str
) -> tuple[str | None, int, list[str]]:
    """(final vLLM mode, training processes, notes) from the recipe after overrides."""
    notes = check_vllm(options, recipe)
    if not recipe.get("use_vllm"):
        return None, options.gpu_count, notes
    mode = recipe.get("vllm_mode")
    if mode is None:
        # use_vllm came from --set without a mode: write thinnka's default down, because the
        # trainers disagree on theirs (TRL 0.18: server, TRL 1.x: colocate).
        mode = recipe["vllm_mode"] = "colocate"
        notes.append("use_vllm without vllm_mode: using colocate (written into the recipe).")
    if recipe.get("use_cpu"):
        raise ConfigError("vLLM needs a GPU: with use_cpu=true pass --no-vllm.")
    if mode != "server":
        return mode, options.gpu_count, notes
    if options.gpu_count < 2:
        raise ConfigError("vLLM server mode needs --gpu-count 2 or more (one GPU serves vLLM).")
    if trainer == "openr1" and recipe.get("trust_remote_code"):
        raise ConfigError(
            "TRL 0.18's `trl vllm-serve` (Open R1's pin) has no --trust_remote_code, so a model "
            "that needs remote code cannot be served. Use --vllm-mode colocate or --trainer trl."
        )
    for key, value in _SERVER_KEYS.items():
        recipe.setdefault(key, value)
    notes.append(
        f"vLLM server mode: `trl vllm-serve` on GPU 0, training on GPUs 1-{options.gpu_count - 1} "
        f"with num_processes {options.gpu_count - 1}."
    )
    return mode, options.gpu_count - 1, notes


def _flash_attn(choice: TransformersChoice, trainer: str) -> TransformersChoice:
    """TRL stack: flash_attention_2 comes from the prebuilt kernels-community/flash-attn2 Hub
    kernel, which transformers 5 (the only line the trl window admits) loads via `kernels`."""
    if trainer != "trl" or not choice.spec:
        return choice
    spec = choice.spec.replace("transformers", "transformers[kernels]", 1)
    if choice.from_git:
        spec = f"transformers[kernels] @ {choice.spec}"
    reason = choice.reason + " With the `kernels` extra for flash_attention_2."
    return TransformersChoice(spec, choice.version, reason, choice.from_git)


def _train_settings(options: RunOptions, trainer: str, chat: ChatDecision) -> dict[str, Any]:
    """thinnka_train.json: what thinnka's launch wrappers add to the trainer's own script."""
    grpo = not options.sft
    settings: dict[str, Any] = {"mode": options.mode, "fold_system_prompt": chat.fold_system}
    if trainer == "openr1":
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


def render(options: RunOptions, model: ModelContext, paths: RemotePaths) -> Rendered:
    """Everything the pipeline uploads and runs; ``ConfigError`` for what cannot work."""
    trainer, grpo = options.trainer, not options.sft
    schema = load_schema(trainer, options.mode)
    chat = decide_chat(options, model)
    rewards: RewardPlan | None = plan_rewards(options, trainer) if grpo else None
    notes: list[str] = list(chat.notes)
    recipe = base_recipe(
        options,
        model,
        paths,
        trainer=trainer,
        chat=chat,
        rewards=rewards,
        merge=options.merge_model,
        num_generations=options.num_generations,
    )
    override_notes, touched = apply_overrides(recipe, options, schema)
    notes += override_notes

    processes = options.gpu_count
    vllm_mode: str | None = None
    if grpo:
        vllm_mode, processes, vllm_notes = _vllm(options, recipe, trainer)
        notes += vllm_notes
    if recipe.get("use_cpu"):
        processes = 1
    placement: Placement = place(options, recipe, processes, vllm_mode=vllm_mode, trainer=trainer)
    notes += placement.notes
    reward_names: list[str] = []
    if grpo:
        notes += batch_rule(recipe, processes, explicit="num_generations" in touched)
        notes += check_rewards(recipe, trainer, weights_set="reward_weights" in touched)
        reward_names = [str(n) for n in recipe.get("reward_funcs") or []]
        assert rewards is not None
        notes.append(
            rewards.note
            if "reward_funcs" not in touched
            else f"Rewards (--set): {', '.join(reward_names)}."
        )
    require_known(recipe, schema)

    attn_fa2 = recipe.get("attn_implementation") == "flash_attention_2"
    choice = choose_transformers(
        options, trainer, model.transformers_version, deepspeed=placement.stage is not None
    )
    if attn_fa2:
        choice = _flash_attn(choice, trainer)
    notes.append(choice.reason)
    if options.report_to == "wandb":
        notes.append(
            "report_to: [wandb]; WANDB_API_KEY reaches the pod as a 0600 file, never "
            "as an argument."
        )
    if trainer == "trl" and options.dataset_fraction < 1:
        notes.append(
            f"--dataset-fraction {options.dataset_fraction}: thinnka's launcher shuffles the "
            f"train split with seed {options.dataset_seed} and keeps that share (TRL's own "
            "`datasets` mixture cannot subsample a single data set)."
        )
    merge = options.merge_model
    adapter_repo = str(recipe.get("hub_model_id", "")).split("/")[-1]
    if merge and len(adapter_repo) > 96:
        raise ConfigError(
            f"--merge-model pushes the adapter to {recipe['hub_model_id']}, a name longer than "
            "the Hub's 96 characters; choose a shorter --hub-model-id."
        )
    if merge and not recipe.get("use_peft"):
        raise ConfigError("--merge-model merges a LoRA adapter, but use_peft was set to false.")

    files: dict[str, str] = {}
    accelerate = launch.accelerate_config(placement.config, processes, recipe)
    # Open R1's registry only takes names: dotted ones need thinnka's wrapper to import them.
    wrapper = trainer == "openr1" and (chat.fold_system or any("." in n for n in reward_names))
    train = launch.train_argv(paths, trainer=trainer, mode=options.mode, wrapper=wrapper)
    command, server_command = train, None
    if vllm_mode == "server":
        max_len = (recipe.get("max_prompt_length") or options.max_prompt_length) + int(
            recipe.get("max_completion_length", options.max_completion_length)
        )
        command, server_command, serve = launch.server_files(
            paths,
            model=str(recipe["model_name_or_path"]),
            revision=str(recipe.get("model_revision", "main")),
            gpu_count=options.gpu_count,
            max_model_len=max_len,
            trust_remote_code=bool(recipe.get("trust_remote_code")),
            train=train,
        )
        files["serve_and_train.py"] = script_text("serve_and_train.py")
        files["serve_and_train.json"] = _json(serve)
    files["recipe.yaml"] = _dump(recipe)
    files["accelerate.yaml"] = _dump(accelerate)
    settings: dict[str, Any] = {}
    if trainer == "trl" or wrapper:
        settings = _train_settings(options, trainer, chat)
        files["thinnka_train.json"] = _json(settings)
        name = "thinnka_trl_train.py" if trainer == "trl" else "thinnka_openr1.py"
        files[name] = script_text(name)
    if any(n.startswith(f"{MODULE}.") for n in reward_names):
        assert rewards is not None
        files["thinnka_rewards.py"] = script_text("thinnka_rewards.py")
        files["thinnka_rewards.json"] = _json(rewards.config)

    merge_command = None
    if merge:
        label = f"Open R1 (TRL {OPENR1_STACK['trl']})" if trainer == "openr1" else f"TRL {TRL_PIN}"
        files["MODEL_CARD.md"] = model_card(
            options, model, recipe, trainer_label=label, stage=placement.stage
        )
        files["merge.py"] = script_text("merge.py")
        files["merge.json"] = _json(merge_settings(options, model, paths, recipe, chat.template))
        merge_command = ["python", f"{paths.run_dir}/merge.py", f"{paths.run_dir}/merge.json"]
        notes.append(
            f"--merge-model: the adapter is pushed to {recipe['hub_model_id']}; after training "
            f"merge.py merges it into the bf16 base and pushes the merged model to "
            f"{model.hub_model_id}."
        )

    facts = SetupFacts(
        trainer=trainer,
        venv=paths.venv,
        openr1_dir=paths.openr1_dir,
        grpo=grpo,
        vllm=vllm_mode is not None,
        quantized=is_quantized(recipe),
        peft=bool(recipe.get("use_peft")) or merge,
        deepspeed=placement.stage is not None,
        flash_attn=attn_fa2,
        report_to=options.report_to,
        transformers_spec=choice.spec,
        custom=options.custom_dependencies,
        trace=options.debug_remote,
    )
    setup_script = "check_image.sh" if options.setup_skipped else f"setup_{trainer}.sh"
    return Rendered(
        recipe=recipe,
        accelerate=accelerate,
        command=command,
        files=files,
        setup_env=setup_values(facts),
        setup_script=setup_script,
        notes=notes,
        transformers_spec=choice.spec,
        transformers_reason=choice.reason,
        gpu_processes=processes,
        merge=merge,
        setup_command=["bash", f"{paths.run_dir}/{setup_script}"],
        merge_command=merge_command,
        server_command=server_command,
        train_settings=settings,
    )
