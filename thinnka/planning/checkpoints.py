"""Where a run's checkpoints go, how often, and what a save costs. Pure (no I/O).

A pod lost under a training is replaced by a new one that resumes from the last
checkpoint (``thinnka.handlers.restart``), so the checkpoints must outlive the pod:

* **the Hub**, by default: transformers' ``hub_strategy="checkpoint"`` pushes, at every
  save, the model files to the target repo ("Training in progress, step N") and the whole
  checkpoint (optimizer and scheduler states, RNG, trainer state) into its
  ``last-checkpoint/`` folder ("Training in progress, step N, checkpoint"). A new pod
  downloads that folder at the commit thinnka names. The commit that records the final push
  (``thinnka-run.json``) deletes ``last-checkpoint/``, so the repo's head holds the final
  model only; its history keeps the checkpoint commits.
* **the network volume** (``--network-volume``): the trainer's own ``checkpoint-N`` folders
  in the output folder on the volume, which the next pod mounts; only the final model is
  pushed (``hub_strategy="end"``).

Saves come about every ``SAVE_EVERY_S`` of the pessimistic step time the run's bound is
derived from, at most ``KEEP`` kept on disk; ``--set save_steps=...`` (or any of these keys)
overrides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from thinnka.options import RunOptions
from thinnka.options.limits import pessimistic_step_s

__all__ = [
    "CHECKPOINT_FOLDER",
    "KEEP",
    "SAVE_EVERY_S",
    "CheckpointCadence",
    "CheckpointCost",
    "checkpoint_cadence",
    "checkpoint_cost",
]

CHECKPOINT_FOLDER = "last-checkpoint"  # transformers' folder for hub_strategy="checkpoint"
SAVE_EVERY_S = 20 * 60.0  # a lost pod costs at most this much training, at the assumed pace
KEEP = 1  # checkpoints kept in the output folder: the newest is all a restart needs
# An upload rate a pod typically reaches to the Hub (about 100 MB/s), for the plan's
# figure; the real rate varies with the data center.
UPLOAD_BYTES_PER_S = 100e6
# Above this a save's upload takes minutes of GPU time every save: the plan suggests a volume.
LARGE_CHECKPOINT_BYTES = 5e9
# Bytes per parameter of a checkpoint: the bf16 weights (2) and, for the trained
# parameters, Adam's two fp32 moments (8) and the fp32 gradients are not saved.
_WEIGHT_BYTES, _OPTIMIZER_BYTES = 2.0, 8.0
# LoRA (r 16, all-linear) trains about 1 % of a model's parameters; the checkpoint holds
# only the adapter and its optimizer states.
_LORA_SHARE = 0.01


@dataclass(frozen=True)
class CheckpointCadence:
    """What the recipe says about saving."""

    where: Literal["hub", "volume"]
    save_steps: int
    keep: int
    hub_strategy: str  # transformers' TrainingArguments.hub_strategy

    def recipe_keys(self) -> dict[str, object]:
        return {
            "save_strategy": "steps",
            "save_steps": self.save_steps,
            "save_total_limit": self.keep,
            "hub_strategy": self.hub_strategy,
        }


@dataclass(frozen=True)
class CheckpointCost:
    """What one save weighs and costs, for ``thinnka plan``."""

    size_bytes: float
    upload_s: float | None  # None: saved to the volume, nothing uploaded
    warning: str | None


def checkpoint_cadence(options: RunOptions) -> CheckpointCadence:
    """Save about every ``SAVE_EVERY_S`` of pessimistic step time, to the Hub or the volume."""
    steps = max(1, math.floor(SAVE_EVERY_S / pessimistic_step_s(options)))
    if options.network_volume:
        return CheckpointCadence("volume", steps, KEEP, "end")
    return CheckpointCadence("hub", steps, KEEP, "checkpoint")


def checkpoint_cost(
    options: RunOptions, num_parameters: int, method: str, where: str
) -> CheckpointCost:
    """A save's size (weights plus optimizer states of what trains) and, to the Hub, its
    upload time at ``UPLOAD_BYTES_PER_S``; a warning suggesting a volume when it is large."""
    trained = num_parameters if method == "full" else num_parameters * _LORA_SHARE
    weights = num_parameters if method == "full" else trained
    size = weights * _WEIGHT_BYTES + trained * _OPTIMIZER_BYTES
    if where != "hub":
        return CheckpointCost(size, None, None)
    upload = size / UPLOAD_BYTES_PER_S
    warning = None
    if size > LARGE_CHECKPOINT_BYTES:
        warning = (
            f"Each checkpoint is about {size / 1e9:.0f} GB: uploading it to the Hub takes about "
            f"{upload / 60:.0f} min of GPU time per save. --network-volume NAME keeps "
            "checkpoints on a Runpod network volume instead (nothing uploaded until the end)."
        )
    return CheckpointCost(size, upload, warning)
