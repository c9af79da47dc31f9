"""The merge step's settings and the merged model's card.

``--merge-model`` (SFT + QLoRA): training pushes the adapter to ``<hub_model_id>-adapter``;
``merge.py`` then merges the adapter from the training ``output_dir`` into the base model in
bf16 and pushes the merged model, with this card, to ``<hub_model_id>``. The card is rendered
here from the *final* recipe, so it reports the ZeRO stage and learning rate that were really
used (the original printed the raw ZeRO flag and a hard-coded 1e-6 learning rate), and
its YAML front matter comes first, where the Hub reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from thinnka.options import RunOptions
    from thinnka.planning.facts import ModelContext, RemotePaths

__all__ = ["merge_settings", "model_card"]


def _lr(value: Any) -> str:
    return f"{float(value):.1e}" if value is not None else "trainer default"


def model_card(
    options: RunOptions,
    model: ModelContext,
    recipe: dict[str, Any],
    *,
    trainer_label: str,
    stage: int | None,
) -> str:
    hub_id = model.hub_model_id
    base = str(recipe["model_name_or_path"])
    front = {
        "base_model": base,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["thinnka", "sft", "qlora", "merged", "trl"],
        # A local data set has no Hub name; its path is this machine's business.
        "datasets": [options.dataset_name] if options.dataset_name else [],
    }
    zero = f"ZeRO-{stage}" if stage else "none (single process, no DeepSpeed)"
    steps = str(recipe["max_steps"]) if recipe.get("max_steps") else "Default (full epochs)"
    lora = (
        f"r={recipe.get('lora_r')}, alpha={recipe.get('lora_alpha')}, "
        f"dropout={recipe.get('lora_dropout')}, target={recipe.get('lora_target_modules')}"
    )
    items = [
        ("Base Model", f"[{base}](https://huggingface.co/{base})"),
        ("Model Name", hub_id),
        ("Training Mode", "SFT (Supervised Fine-Tuning)"),
        ("QLoRA", "Yes" if recipe.get("load_in_4bit") else "No (LoRA)"),
        ("LoRA", lora),
        ("ZeRO Stage", zero),
        ("Trainer", trainer_label),
        (
            "Dataset",
            f"[{options.dataset_name}](https://huggingface.co/datasets/{options.dataset_name})"
            if options.dataset_name
            else "a local data set (uploaded to the training pod only, not published)",
        ),
    ]
    if options.dataset_fraction < 1:
        items.append(("Dataset Fraction", f"{options.dataset_fraction * 100:.1f}%"))
    items += [
        ("Max Steps", steps),
        ("Epochs", str(recipe.get("num_train_epochs", "trainer default"))),
        ("Per Device Batch Size", str(recipe.get("per_device_train_batch_size"))),
        ("Gradient Accumulation Steps", str(recipe.get("gradient_accumulation_steps"))),
        ("Learning Rate", _lr(recipe.get("learning_rate"))),
        ("Max Sequence Length", str(recipe.get("max_length", "trainer default"))),
        ("Attention Implementation", str(recipe.get("attn_implementation", "default"))),
        ("Trust Remote Code", "Yes" if recipe.get("trust_remote_code") else "No"),
    ]
    if options.custom_dependencies:
        items.append(("Custom Dependencies", ", ".join(options.custom_dependencies)))
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {hub_id}",
        "",
        f"This model is [{base}](https://huggingface.co/{base}) fine-tuned with supervised "
        "fine-tuning (QLoRA) and specifically trained to enhance reasoning capabilities. The "
        "LoRA adapter was merged into the bf16 base weights; the adapter alone is at "
        f"[{hub_id}-adapter](https://huggingface.co/{hub_id}-adapter).",
        "",
        "## Training Arguments",
        "",
        *(f"- **{label}**: {value}" for label, value in items),
        "",
        "---",
        "",
        "This model was tuned to reason. It has been trained to improve its ability to think "
        "through problems step by step and provide well-reasoned responses.",
        "",
        "---",
        "",
    ]
    return "\n".join(lines)


def merge_settings(
    options: RunOptions,
    model: ModelContext,
    paths: RemotePaths,
    recipe: dict[str, Any],
    chat_template: str | None,
) -> dict[str, Any]:
    """merge.json: what merge.py reads (nothing is pasted into its source)."""
    return {
        "adapter_dir": paths.output_dir,
        # The final recipe's model: a --set model_name_or_path override is what was trained.
        "base_model": recipe["model_name_or_path"],
        "base_revision": recipe.get("model_revision", "main"),
        "merged_dir": f"{paths.output_dir.rstrip('/')}-merged",
        "hub_model_id": model.hub_model_id,
        "adapter_hub_id": recipe.get("hub_model_id"),
        "trust_remote_code": bool(recipe.get("trust_remote_code")),
        "dtype": "bfloat16",
        "chat_template": chat_template,
        "model_card": f"{paths.run_dir}/MODEL_CARD.md",
        "private": False,
    }
