"""SFT and GRPO on the CPU the way Open R1's ``sft.py``/``grpo.py`` drive TRL, on Open R1's stack.

Run by ``tools/capture_trainer_logs.py`` inside a venv holding Open R1's pinned TRL,
transformers, accelerate and datasets (``thinnka.planning.versions.OPENR1_STACK``), under
``accelerate launch --cpu``. Open R1 itself is not installed (it comes from GitHub and pins a
CUDA torch), so this stands in for its two scripts: the same flow (seed, logging at the
recipe's ``log_level: info`` to stdout, the dataset turned into a system + user
conversation, the trainer built from a model path, ``train``, ``log_metrics``,
``save_state``, ``save_model``) and, for GRPO, reward functions named as Open R1's
registry names them (``accuracy`` → ``accuracy_reward``, ``format`` → ``format_reward``,
``tag_count`` → ``tag_count_reward``: TRL logs ``rewards/<__name__>/mean``). The reward
functions are this file's own, simpler ones (no math-verify); what they score does not
matter to the log's shape. Training settings: thinnka's ``recipes/templates/openr1_*.yaml``
with the CPU overrides of docs/trainers.md, "CPU smoke runs" (SFT: logging every 2 steps).

The tiny model and data sets are the test suite's (tests/world/tiny.py), built here with the
stack's own transformers (a model saved by transformers 5 names a tokenizer class 4.52 lacks).

Usage, from the repository root: python tools/openr1_stack_train.py {sft,grpo} WORKDIR
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

SYSTEM_PROMPT = "Respond in the following format: <think>\n...\n</think>\n<answer>\n...\n</answer>"
_TAGS = ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>")


def _text(completion: Any) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


def accuracy_reward(completions: list[Any], solution: list[str], **kwargs: Any) -> list[float]:
    """1.0 when the last number of the completion is the solution's (``\\boxed{6}``, ``$6$``)."""
    rewards = []
    for completion, gold in zip(completions, solution, strict=True):
        said, wanted = re.findall(r"-?\d+", _text(completion)), re.findall(r"-?\d+", gold)
        rewards.append(1.0 if said and wanted and said[-1] == wanted[-1] else 0.0)
    return rewards


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 for think-tags then answer-tags, each on lines of their own."""
    pattern = re.compile(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", re.S | re.M)
    return [1.0 if pattern.match(_text(c)) else 0.0 for c in completions]


def tag_count_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """A quarter for each of the four tags that appears exactly once."""
    return [sum(0.25 for tag in _TAGS if _text(c).count(tag) == 1) for c in completions]


def _setup_logging(training_args: Any) -> logging.Logger:
    import datasets
    import transformers

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    logger = logging.getLogger("openr1_stack_train")
    logger.setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    return logger


_COMMON: dict[str, Any] = {
    "bf16": False, "use_cpu": True, "do_eval": False, "gradient_checkpointing": False,
    "log_level": "info", "logging_first_step": True, "logging_steps": 1,
    "logging_strategy": "steps", "lr_scheduler_type": "cosine_with_min_lr",
    "lr_scheduler_kwargs": {"min_lr_rate": 0.1}, "max_steps": 4,
    "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "push_to_hub": False,
    "report_to": "none", "save_strategy": "no", "seed": 42, "warmup_ratio": 0.1,
    "overwrite_output_dir": True,
}  # fmt: skip


def sft(model: str, data: str, output_dir: str) -> None:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    # logging_steps 2 (a --set override): the dicts are then steps 1, 2 and 4, as
    # logging_first_step logs step 1 too; metrics must store them as such.
    settings = {**_COMMON, "logging_steps": 2, "max_steps": 5}
    args = SFTConfig(output_dir=output_dir, learning_rate=2e-4, max_length=128, **settings)
    set_seed(args.seed)
    logger = _setup_logging(args)
    logger.info(f"Training parameters {args}")
    dataset = load_dataset("parquet", data_files={"train": data})
    tokenizer = AutoTokenizer.from_pretrained(model)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model, torch_dtype="float32"),
        args=args,
        train_dataset=dataset["train"],
        processing_class=tokenizer,
    )
    _train(trainer, logger, len(dataset["train"]), output_dir)


def grpo(model: str, data: str, output_dir: str) -> None:
    from datasets import load_dataset
    from transformers import AutoTokenizer, set_seed
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=output_dir, learning_rate=1e-6, use_vllm=False, num_generations=2,
        max_prompt_length=64, max_completion_length=16, temperature=0.7,
        log_completions=True, model_init_kwargs={"torch_dtype": "float32",
                                                 "attn_implementation": "eager"},
        **_COMMON,
    )  # fmt: skip
    set_seed(args.seed)
    logger = _setup_logging(args)
    logger.info(f"Training parameters {args}")
    dataset = load_dataset("json", data_files={"train": data})

    def conversation(row: dict[str, Any]) -> dict[str, Any]:
        prompt = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": row["problem"]},
        ]
        return {"prompt": prompt}

    dataset = dataset.map(conversation)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[accuracy_reward, format_reward, tag_count_reward],
        args=args,
        train_dataset=dataset["train"],
        processing_class=AutoTokenizer.from_pretrained(model, padding_side="left"),
    )
    _train(trainer, logger, len(dataset["train"]), output_dir)


def _train(trainer: Any, logger: logging.Logger, samples: int, output_dir: str) -> None:
    logger.info("*** Train ***")
    metrics = trainer.train().metrics
    metrics["train_samples"] = samples
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    logger.info("*** Save model ***")
    trainer.save_model(output_dir)
    logger.info(f"Model saved to {output_dir}")


def main() -> None:
    mode, workdir = sys.argv[1], Path(sys.argv[2])
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.world.tiny import (
        CHATML_TEMPLATE,
        build_tiny_model,
        write_grpo_dataset,
        write_sft_dataset,
    )

    model = workdir / "model"
    if not (model / "config.json").exists():
        build_tiny_model(model, chat_template=CHATML_TEMPLATE)
    if mode == "sft":
        data = write_sft_dataset(workdir / "sft") / "data" / "train-00000-of-00001.parquet"
        sft(str(model), str(data), str(workdir / "out-sft"))
    else:
        data = write_grpo_dataset(workdir / "grpo") / "train.jsonl"
        grpo(str(model), str(data), str(workdir / "out-grpo"))


if __name__ == "__main__":
    main()
