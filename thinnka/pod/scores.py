"""The evaluation scores a training left on its pod (``scores.json``, thinnka_eval.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from thinnka.errors import ThinnkaError
from thinnka.store.score_table import Score, scores_from_file

if TYPE_CHECKING:
    from thinnka.clients.ssh import PodShell
    from thinnka.step import StepContext

__all__ = ["SCORES_FILE", "collect_marker_scores", "collect_scores", "describe_scores"]

SCORES_FILE = "scores.json"


def describe_scores(scores: list[Score]) -> str:
    """``eval_loss 2.31 → 1.90, perplexity 10.1 → 6.69 on 10 held-out rows``."""
    if not scores:
        return ""
    split = scores[0].split
    return ", ".join(s.describe() for s in scores) + (f" on {split}" if split else "")


def collect_scores(ctx: StepContext, shell: PodShell, run_dir: str) -> list[Score]:
    """Read the pod's scores, record them with the run, say them; none when absent."""
    try:
        raw = shell.read_from(f"{run_dir}/{SCORES_FILE}", 0)
    except ThinnkaError as exc:  # the model is pushed: a lost score file fails nothing
        ctx.output.event("warning", f"The eval scores could not be read ({exc.message}).")
        return []
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        ctx.output.event("warning", f"{run_dir}/{SCORES_FILE} is not JSON: no scores recorded.")
        return []
    return _record(ctx, data)


def collect_marker_scores(ctx: StepContext, marker: str) -> list[Score]:
    """The scores the final-push marker on the Hub carries (thinnka_mark.py), for a run
    whose pod ended before they were read from it."""
    try:
        found = ctx.services.hub.json_at_head(ctx.run.hub_model_id or "", marker)
    except ThinnkaError as exc:
        ctx.output.event("warning", f"The eval scores could not be read ({exc.message}).")
        return []
    return _record(ctx, (found or {}).get("scores"))


def _record(ctx: StepContext, data: object) -> list[Score]:
    scores = scores_from_file(data) if isinstance(data, dict) else []
    if scores:
        ctx.save(scores=scores)
        ctx.output.event("scores", f"Eval scores: {describe_scores(scores)}.")
    return scores
