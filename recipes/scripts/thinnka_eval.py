"""Scores of the held-out split, before and after training; used by thinnka's launchers.

``thinnka_train.json`` next to this file says what to hold out (``eval``):

* ``dataset`` (a Hub data set, or the folder thinnka uploaded a local one to): its train
  split, at most ``max_rows`` rows, is the evaluation set;
* else ``fraction`` of the training rows, at least one, at most ``max_rows``, drawn with
  ``seed`` (``datasets``' own ``train_test_split``), and left out of training.

The trainer's own evaluation loop measures them (``Trainer.evaluate``): SFT's eval loss
(perplexity is its exponential) and mean token accuracy; GRPO's loop generates one group
of completions per held-out prompt with the current policy and logs the mean of each
reward function (``eval_rewards/<name>/mean``). Before training the policy is the base
model (LoRA adapters start as a no-op); after training it is the trained one. Both go to
``scores.json`` in the run folder, which thinnka reads after the run and the final push
writes into the model card. A resumed training keeps the "before" scores measured by the
first start (a checkpoint is not the base model).

``points`` more measurements, evenly spaced, happen during training (a callback asks the
trainer's own loop to evaluate at those steps), so the report can draw each score over the
steps. Every measurement, before, on the way and after, prints one line thinnka reads:
``thinnka: eval at step N: {json scores}``; the trainer's own printed eval dict is not
read (it carries no step).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCORES = HERE / "scores.json"

__all__ = [
    "SCORES", "add_scores_to_card", "eval_steps", "held_out", "measure", "scored_train",
]  # fmt: skip


def held_out(settings: dict[str, Any] | None, train: Any, load: Any) -> tuple[Any, Any, str]:
    """(train rows, eval rows or None, what the eval split is) for the ``eval`` settings."""
    if not settings:
        return train, None, ""
    limit = int(settings.get("max_rows") or 200)
    if settings.get("dataset"):
        loaded = load(settings["dataset"])
        rows = loaded["train"] if hasattr(loaded, "keys") else loaded
        rows = rows.select(range(min(limit, len(rows))))
        return train, rows, f"{len(rows)} rows of {settings.get('label') or 'the eval data set'}"
    fraction = float(settings.get("fraction") or 0.0)
    if fraction <= 0 or len(train) < 2:
        return train, None, ""
    count = min(limit, max(1, round(len(train) * fraction)), len(train) - 1)
    parts = train.train_test_split(test_size=count, seed=int(settings.get("seed") or 0))
    print(f"thinnka: held out {count} of {len(train)} rows for evaluation", flush=True)
    return parts["train"], parts["test"], f"{count} held-out rows"


def _no_cpu_packing(model: Any) -> None:
    """bitsandbytes repacks 4-bit weights for a CPU fast path the first time a layer runs
    in eval mode without gradients, and that repacking fails for layers narrower than its
    block (64): on a CPU run (``use_cpu``) evaluation keeps the plain 4-bit kernel."""
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False


def _quiet(*args: Any, **kwargs: Any) -> None:
    return None


def measure(trainer: Any, mode: str) -> dict[str, float]:
    """The trainer's evaluation of its eval set, as thinnka's score names."""
    returned = trainer.evaluate()
    return scores_of(_last_eval_entry(trainer.state.log_history), returned, mode)


def _last_eval_entry(history: list[dict[str, Any]]) -> dict[str, Any]:
    for entry in reversed(history):  # GRPO logs its rewards, it does not return them
        if any(str(k).startswith("eval_") for k in entry):
            return entry
    return {}


def scores_of(logged: dict[str, Any], returned: dict[str, Any], mode: str) -> dict[str, float]:
    """thinnka's score names for what one evaluation logged and returned."""
    found = {**logged, **returned}
    scores: dict[str, float] = {}
    if mode == "sft":
        loss = found.get("eval_loss")
        if loss is not None:
            scores["eval_loss"] = float(loss)
            scores["perplexity"] = math.exp(min(float(loss), 50.0))
        if found.get("eval_mean_token_accuracy") is not None:
            scores["token_accuracy"] = float(found["eval_mean_token_accuracy"])
        return scores
    for key, value in found.items():
        key = str(key)
        if key.startswith("eval_rewards/") and key.endswith("/mean") and value is not None:
            scores[key[len("eval_rewards/") : -len("/mean")]] = float(value)
    if found.get("eval_reward") is not None:
        scores["reward"] = float(found["eval_reward"])
    return scores


def _write(scores: dict[str, Any]) -> None:
    temporary = SCORES.with_suffix(".tmp")
    temporary.write_text(json.dumps(scores, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, SCORES)


def eval_steps(total: int, points: int) -> set[int]:
    """The steps strictly inside a run of ``total`` steps where the eval split is scored
    on the way: ``points`` of them, evenly spaced (fewer when the run is short)."""
    if total <= 1 or points <= 0:
        return set()
    return {math.ceil(i * total / (points + 1)) for i in range(1, points + 1)} - {0, total}


def _scoring_callback(mode: str, points: int) -> Any:
    from transformers import TrainerCallback

    class ScoreOnTheWay(TrainerCallback):  # type: ignore[misc]
        """Asks the trainer's loop to evaluate at ``eval_steps`` and prints every
        evaluation's scores with the step it was measured at."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step in eval_steps(state.max_steps, points):
                control.should_evaluate = True
            return control

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.is_world_process_zero:
                metrics = kwargs.get("metrics") or {}
                scores = scores_of(_last_eval_entry(state.log_history), metrics, mode)
                # "\r" first: during training the step bar is on the current line
                # without a newline, and a line of its own is what thinnka reads.
                print(f"\rthinnka: eval at step {state.global_step}: {json.dumps(scores)}",
                      flush=True)  # fmt: skip
            return control

    return ScoreOnTheWay()


def scored_train(trainer: Any, mode: str, label: str, train: Any, points: int = 0) -> None:
    """``train()`` between two measurements of the eval set (none without one), with
    ``points`` more on the way."""
    if trainer.eval_dataset is None:
        train()
        return
    if trainer.args.use_cpu:
        _no_cpu_packing(trainer.model)
    trainer.add_callback(_scoring_callback(mode, points))
    # An evaluation's progress bar has no description, like the training's own: thinnka
    # would read its "1/1" as training steps. The scores are printed instead.
    bars = [
        cb for cb in trainer.callback_handler.callbacks if type(cb).__name__ == "ProgressCallback"
    ]
    for bar in bars:
        bar.on_prediction_step = _quiet
    try:
        _scored_train(trainer, mode, label, train)
    finally:
        for bar in bars:
            del bar.on_prediction_step


def _scored_train(trainer: Any, mode: str, label: str, train: Any) -> None:
    main = trainer.accelerator.is_main_process
    recorded = json.loads(SCORES.read_text()) if SCORES.exists() else {}
    if "before" not in recorded:
        print("thinnka: scoring the base model on the eval split", flush=True)
        recorded = {
            "split": label,
            "rows": len(trainer.eval_dataset),
            "before": measure(trainer, mode),
        }
        if main:
            _write(recorded)
    train()
    print("thinnka: scoring the trained model on the eval split", flush=True)
    recorded["after"] = measure(trainer, mode)
    if main:
        _write(recorded)
        summary = ", ".join(
            f"{name} {before:.4g} → {recorded['after'].get(name, float('nan')):.4g}"
            for name, before in recorded["before"].items()
        )
        print(f"thinnka: scores on {label}: {summary}", flush=True)


def card_section(scores: dict[str, Any]) -> str:
    """The model card's evaluation section (markdown)."""
    before, after = scores.get("before") or {}, scores.get("after") or {}
    lines = [
        "## Evaluation",
        "",
        f"Measured by thinnka on {scores.get('split') or 'the eval split'}, before training "
        "(the base model) and after.",
        "",
        "| metric | before | after |",
        "|---|---|---|",
    ]
    for name in dict.fromkeys([*before, *after]):
        cells = [f"{v[name]:.4g}" if name in v else "-" for v in (before, after)]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def add_scores_to_card(trainer: Any) -> None:
    """Make the trainer's model card (written by ``push_to_hub`` before its upload) carry
    the scores: wrap ``create_model_card`` on this trainer only."""
    original = trainer.create_model_card

    def create_model_card(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        if not SCORES.exists() or not trainer.accelerator.is_main_process:
            return
        scores = json.loads(SCORES.read_text())
        if "after" not in scores:
            return
        card = Path(trainer.args.output_dir) / "README.md"
        if not card.parent.is_dir():
            return
        text = card.read_text(encoding="utf-8") if card.exists() else ""
        card.write_text(text.rstrip("\n") + "\n\n" + card_section(scores), encoding="utf-8")

    trainer.create_model_card = create_model_card
