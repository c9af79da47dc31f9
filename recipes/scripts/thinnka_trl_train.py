"""thinnka's launcher for the ``trl`` trainer: TRL's own sft/grpo script plus what it lacks.

Run by ``accelerate launch ... thinnka_trl_train.py --config recipe.yaml`` in the run folder.
The recipe is parsed by the very parser of ``trl/scripts/<mode>.py`` (strict: an unknown key
fails instead of being dropped), so recipe.yaml holds TRL keys only. What TRL's scripts do
not do comes from ``thinnka_train.json`` next to this file:

* GRPO prompts from any column, with thinnka's system prompt (folded into the user turn for
  templates that reject a system message), and prompts longer than ``max_prompt_length``
  tokens dropped (TRL 1.x has no prompt truncation);
* a chat template set on the tokenizer (models without one);
* ``dataset_fraction``: a seeded shuffle, then that share of the train split;
* SFT with folding: system messages merged into the first user turn;
* resuming from the newest checkpoint in ``output_dir`` (thinnka resume);
* the held-out split scored before and after training (``thinnka_eval.py``), the scores
  written into the model card.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _fold_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if system:
        for message in rest:
            if message.get("role") == "user":
                message["content"] = f"{system}\n\n{message['content']}"
                break
    return rest


def _prompt(value: Any, system: str | None, fold: bool) -> list[dict[str, Any]]:
    # A list is already a conversation; anything else becomes the user turn.
    messages = list(value) if isinstance(value, list) else [{"role": "user", "content": str(value)}]
    if system:
        messages = [{"role": "system", "content": system}, *messages]
    return _fold_messages(messages) if fold else messages


def _rewards(names: list[str] | None, model_reward: str | None) -> list[Any]:
    from trl.rewards import (
        accuracy_reward,
        get_soft_overlong_punishment,
        reasoning_accuracy_reward,
        think_format_reward,
    )

    registry = {
        "accuracy_reward": accuracy_reward,
        "reasoning_accuracy_reward": reasoning_accuracy_reward,
        "think_format_reward": think_format_reward,
        "get_soft_overlong_punishment": get_soft_overlong_punishment(
            max_completion_len=1280, soft_punish_cache=256
        ),
    }
    funcs: list[Any] = [model_reward] if model_reward else []
    for name in names or []:
        if name in registry:
            funcs.append(registry[name])
        elif "." in name:
            module, func = name.rsplit(".", 1)
            funcs.append(getattr(importlib.import_module(module), func))
        else:
            raise ValueError(
                f"Unknown reward function {name!r}: use {list(registry)} or a dotted path."
            )
    return funcs


def main() -> None:
    settings = json.loads((HERE / "thinnka_train.json").read_text(encoding="utf-8"))
    mode = settings["mode"]
    # thinnka_rewards.py (and any dotted reward path) is imported from the run folder.
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, os.getcwd())
    script = importlib.import_module(f"trl.scripts.{mode}")
    parser = script.make_parser()
    script_args, training_args, model_args, dataset_args = parser.parse_args_and_config()

    from datasets import load_dataset
    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import get_dataset, get_peft_config, get_quantization_config

    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    if dataset_args.datasets:
        dataset = get_dataset(dataset_args)
    elif script_args.dataset_name:
        dataset = load_dataset(script_args.dataset_name, name=script_args.dataset_config)
    else:
        raise ValueError("Either `datasets` or `dataset_name` must be provided.")
    train = dataset[script_args.dataset_train_split]
    fraction = float(settings.get("dataset_fraction") or 1.0)
    if fraction < 1.0:
        keep = max(1, int(len(train) * fraction))
        train = train.shuffle(seed=int(settings.get("dataset_seed") or 0)).select(range(keep))
        print(f"thinnka: dataset fraction {fraction}: kept {keep} rows", flush=True)
    # The held-out split (thinnka_eval.py): scored before and after training.
    from thinnka_eval import add_scores_to_card, held_out, scored_train

    train, held, label = held_out(settings.get("eval"), train, lambda name: load_dataset(name))

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    if settings.get("chat_template"):
        tokenizer.chat_template = settings["chat_template"]
    fold = bool(settings.get("fold_system_prompt"))

    kwargs: dict[str, Any] = {}
    if mode == "grpo":
        from trl import GRPOTrainer as Trainer

        column = settings.get("prompt_column") or "prompt"
        if column not in train.column_names:
            raise ValueError(f"Dataset has no column {column!r} (columns: {train.column_names}).")
        system = settings.get("system_prompt")
        train = train.map(lambda row: {"prompt": _prompt(row[column], system, fold)})
        if column != "prompt":
            train = train.remove_columns([column])
        if held is not None:
            held = held.map(lambda row: {"prompt": _prompt(row[column], system, fold)})
            if column != "prompt":
                held = held.remove_columns([column])
        limit = settings.get("max_prompt_length")
        if limit:
            before = len(train)

            def fits(row: dict[str, Any]) -> bool:
                ids = tokenizer.apply_chat_template(
                    row["prompt"], add_generation_prompt=True, tokenize=True
                )
                ids = ids["input_ids"] if isinstance(ids, dict) else ids
                return len(ids) <= int(limit)

            train = train.filter(fits)
            print(f"thinnka: kept {len(train)}/{before} prompts of <= {limit} tokens", flush=True)
        kwargs["reward_funcs"] = _rewards(
            script_args.reward_funcs, script_args.reward_model_name_or_path
        )
    else:
        from trl import SFTTrainer as Trainer

        if fold and "messages" in train.column_names:
            train = train.map(lambda row: {"messages": _fold_messages(row["messages"])})
            if held is not None:
                held = held.map(lambda row: {"messages": _fold_messages(row["messages"])})

    eval_dataset = held
    if eval_dataset is None and training_args.eval_strategy != "no":
        eval_dataset = dataset[script_args.dataset_test_split]
    if mode == "grpo" and eval_dataset is not None:
        # TRL's GRPO evaluation generates num_generations completions per prompt: its eval
        # batch must hold whole groups.
        groups = training_args.num_generations
        if training_args.per_device_eval_batch_size % groups:
            training_args.per_device_eval_batch_size = groups
    trainer = Trainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
        **kwargs,
    )
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
    # Every process says where it stands: on a cluster (--nodes) each node's log shows
    # that all of them joined one process group.
    state = trainer.accelerator.state
    print(f"thinnka: process {state.process_index} of world size {state.num_processes}", flush=True)
    if checkpoint is not None:
        print(f"thinnka: trainer resumes from {checkpoint}", flush=True)
    if held is not None:
        add_scores_to_card(trainer)
        points = int((settings.get("eval") or {}).get("points") or 0)
        scored_train(
            trainer, mode, label,
            lambda: trainer.train(resume_from_checkpoint=checkpoint), points,
        )  # fmt: skip
    else:
        trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(training_args.output_dir)
    trainer.accelerator.print(f"thinnka: model saved to {training_args.output_dir}")
    if training_args.push_to_hub:
        # A local data set's pod folder is no data set name for the card's metadata.
        local = bool(settings.get("local_data"))
        trainer.push_to_hub(dataset_name=None if local else script_args.dataset_name)
        trainer.accelerator.print(f"thinnka: pushed to {trainer.hub_model_id}")


if __name__ == "__main__":
    main()
