"""training → pushed: follow the training to its end, then verify the Hub has it.

The trainer pushes (``push_to_hub``); thinnka then checks that the target
repo has a commit newer than the one it saw before training started.
Without one, the run failed, whatever the exit code said.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from thinnka.errors import RemoteError
from thinnka.handlers.base import StepContext, StepResult
from thinnka.handlers.install import rendered_for_run
from thinnka.handlers.jobs import follow_job, start_job
from thinnka.handlers.pod import open_shell
from thinnka.store import RunRecord
from thinnka.store.models import utcnow

__all__ = ["PushHandler"]

DEFAULT_MAX_HOURS = 72.0


class PushHandler:
    trigger: ClassVar[str] = "push"

    def timeout_s(self, run: RunRecord) -> float:
        """Until --max-hours after the pod started (72 h when not given)."""
        hours = run.options.max_hours or DEFAULT_MAX_HOURS
        started = run.pod_started_at or utcnow()
        left = (started + dt.timedelta(hours=hours) - utcnow()).total_seconds()
        return max(left, 60.0)

    def run(self, ctx: StepContext) -> StepResult:
        paths, rendered = rendered_for_run(ctx)
        shell = open_shell(ctx)
        follow_job(ctx, shell, "train", "train").require_success("Training", "training_failed")
        ctx.output.event("train_done", "Training finished.")
        if rendered.merge:
            ctx.output.event("merge_start", "Merging the LoRA adapter into the base model.")
            start_job(
                shell, paths.run_dir, "merge", ["bash", "train.sh", *(rendered.merge_command or [])]
            )
            follow_job(ctx, shell, "merge", "merge").require_success("Merge", "merge_failed")
        hub_id = ctx.run.hub_model_id or ""
        latest = ctx.services.hub.last_commit_at(hub_id)
        baseline = ctx.run.remote.hub_baseline
        if latest is None or (baseline is not None and latest <= baseline):
            raise RemoteError(
                f"Training ended, but {hub_id} shows no commit made after it started: "
                "the push did not happen.",
                reason="push_missing",
            )
        ctx.output.event("pushed", f"Model pushed to {hub_id}.")
        return StepResult(message=f"Pushed to {hub_id} (commit at {latest.isoformat()}).")
