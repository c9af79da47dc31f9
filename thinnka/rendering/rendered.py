"""``Rendered``: what ``render`` returns, everything a run uploads and runs on the pod."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thinnka.planning.training import TrainingPlan

__all__ = ["Rendered"]


@dataclass(frozen=True)
class Rendered:
    """Everything the pipeline uploads and runs for one training run.

    Upload every ``files`` entry to ``run_dir``, run ``setup_script`` there (it sources
    ``setup.env``), then ``command`` in ``run_dir`` with the venv active, then
    ``merge_command`` when ``merge``.
    """

    recipe: dict[str, Any]
    accelerate: dict[str, Any]
    # What the pod runs: the trainer's entry point, or thinnka's launcher around it.
    command: list[str]
    # The trainer's own entry point with the same recipe (what ``thinnka plan`` shows).
    entry_command: list[str]
    files: dict[str, str]
    setup_env: dict[str, str]
    setup_script: str  # setup_openr1.sh, setup_trl.sh, or check_image.sh with --skip-setup
    notes: list[str]
    transformers_spec: str
    merge: bool
    merge_command: list[str] | None
    # Server mode only: the `trl vllm-serve` argv that `command` (serve_and_train.py) starts
    # on the first GPU before training.
    server_command: list[str] | None
    training: TrainingPlan  # every decision the files were written from
