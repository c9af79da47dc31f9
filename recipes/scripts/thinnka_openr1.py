"""Run Open R1's own grpo.py/sft.py with the two things its registry and prompts cannot do.

Used instead of ``src/open_r1/<mode>.py`` only when a run needs it (thinnka_train.json next
to this file says what):

* custom rewards: Open R1's ``get_reward_funcs`` only knows registry names, so dotted names
  (``thinnka_rewards.format_reward``) are imported here and the rest still go to the registry,
  in the recipe's order;
* scores: the held-out split measured before and after training (``thinnka_eval.py``);
* system folding: for chat templates that reject a system message (Gemma 1/2), GRPO prompts
  get the system prompt prepended to the user text, and SFT conversations get their system
  messages merged into the first user turn.

The recipe is parsed exactly as upstream's ``__main__`` does, then upstream ``main`` runs.
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def resolve_rewards(original: Any) -> Any:
    def get_reward_funcs(script_args: Any) -> list[Any]:
        funcs: list[Any] = []
        for name in script_args.reward_funcs:
            if "." in name:
                module, func = name.rsplit(".", 1)
                funcs.append(getattr(importlib.import_module(module), func))
            else:
                one = copy.copy(script_args)
                one.reward_funcs = [name]
                funcs.extend(original(one))
        return funcs

    return get_reward_funcs


def fold_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if system:
        for message in rest:
            if message.get("role") == "user":
                message["content"] = f"{system}\n\n{message['content']}"
                break
    return rest


def folding_dataset(original: Any, mode: str, prefix: str | None) -> Any:
    def get_dataset(script_args: Any) -> Any:
        dataset = original(script_args)
        if mode == "grpo" and prefix:
            column = script_args.dataset_prompt_column
            return dataset.map(lambda row: {column: f"{prefix}\n\n{row[column]}"})
        if mode == "sft":
            return dataset.map(
                lambda row: (
                    {"messages": fold_messages(row["messages"])} if "messages" in row else {}
                )
            )
        return dataset

    return get_dataset


def scoring(module: Any, mode: str, settings: dict[str, Any], training_args: Any) -> None:
    """Hold the eval split out of the data set and score it before and after training
    (thinnka_eval.py). Open R1 hands ``dataset[dataset_test_split]`` to its trainer when
    ``eval_strategy`` is not "no": the held-out rows become that split (after Open R1's own
    prompt mapping, which runs over every split), and a step interval no run reaches
    keeps the trainer from evaluating on the way."""
    from thinnka_eval import add_scores_to_card, held_out, scored_train

    original = module.get_dataset
    label: dict[str, str] = {}

    def get_dataset(script_args: Any) -> Any:
        from datasets import load_dataset

        dataset = original(script_args)
        split = script_args.dataset_train_split
        train, held, label["text"] = held_out(settings, dataset[split], load_dataset)
        if held is not None:
            dataset[split], dataset["thinnka_eval"] = train, held
            script_args.dataset_test_split = "thinnka_eval"
        return dataset

    module.get_dataset = get_dataset
    training_args.eval_strategy = "steps"
    training_args.eval_steps = 10**9
    if mode == "grpo" and training_args.per_device_eval_batch_size % training_args.num_generations:
        training_args.per_device_eval_batch_size = training_args.num_generations
    name = "GRPOTrainer" if mode == "grpo" else "SFTTrainer"
    base = getattr(module, name)

    class Scored(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            add_scores_to_card(self)

        def train(self, *args: Any, **kwargs: Any) -> Any:
            result: list[Any] = []
            run = super().train
            scored_train(
                self, mode, label.get("text", ""),
                lambda: result.append(run(*args, **kwargs)), int(settings.get("points") or 0),
            )  # fmt: skip
            return result[0] if result else None

    setattr(module, name, Scored)


def main() -> None:
    settings = json.loads((HERE / "thinnka_train.json").read_text(encoding="utf-8"))
    mode = settings["mode"]
    sys.path.insert(0, str(HERE))  # thinnka_rewards.py lives next to this file
    module = importlib.import_module(f"open_r1.{mode}")
    from trl import ModelConfig, TrlParser

    configs = importlib.import_module("open_r1.configs")
    if mode == "grpo":
        module.get_reward_funcs = resolve_rewards(module.get_reward_funcs)
        types = (configs.GRPOScriptArguments, configs.GRPOConfig, ModelConfig)
    else:
        types = (configs.ScriptArguments, configs.SFTConfig, ModelConfig)
    script_args, training_args, model_args = TrlParser(types).parse_args_and_config()
    if settings.get("fold_system_prompt"):
        # A system_prompt that reached the recipe anyway (--set) is folded too, never sent.
        prefix = settings.get("system_prompt") or getattr(training_args, "system_prompt", None)
        training_args.system_prompt = None
        module.get_dataset = folding_dataset(module.get_dataset, mode, prefix)
    if settings.get("eval"):
        scoring(module, mode, settings["eval"], training_args)
    module.main(script_args, training_args, model_args)


if __name__ == "__main__":
    main()
