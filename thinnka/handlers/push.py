"""training → pushed: follow the training to its end, then verify the Hub has it.

The trainer pushes (``push_to_hub``); thinnka then checks that the target
repo has a commit newer than the one it saw before training started.
Without one, the run failed, whatever the exit code said.

When the pod is gone (its watchdog terminated it after an unfollowed end, it
hit its deadline, or the host was lost), the run is finished from what is
known: a verified push is a success; past the deadline it failed with
``max_duration``/``max_cost``; otherwise the pod was lost (``pod_lost``).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import ClassVar

from thinnka.errors import RemoteError, TransientError
from thinnka.handlers.base import rendered_for_run
from thinnka.options.limits import run_limit
from thinnka.pod.jobs import PodGone, follow_job, pod_is_gone, start_job
from thinnka.pod.shell import open_shell
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord
from thinnka.store.models import utcnow

__all__ = ["PushHandler", "hub_has_push"]


# The push check decides a whole training (no new commit: failed, pod terminated), so a
# Hub that fails transiently is asked again, with pauses, for up to this long in all (within
# the step's deadline): more than one client call's few quick retries.
_VERIFY_S = 120.0
_VERIFY_PAUSE_S = 1.0


def hub_has_push(ctx: StepContext) -> dt.datetime | None:
    """The Hub's newest commit when it is newer than the one seen before training."""
    latest = _latest_commit(ctx, ctx.run.hub_model_id or "")
    baseline = ctx.run.remote.hub_baseline
    if latest is None or (baseline is not None and latest <= baseline):
        return None
    return latest


def _latest_commit(ctx: StepContext, repo_id: str) -> dt.datetime | None:
    """``last_commit_at``, retried after transient errors until ``_VERIFY_S`` (bounded by
    the step's deadline); a refused token (``AuthError``) is never retried."""
    give_up = time.monotonic() + min(_VERIFY_S, max(ctx.remaining(), 0.0))
    pause = _VERIFY_PAUSE_S
    while True:
        try:
            return ctx.services.hub.last_commit_at(repo_id)
        except TransientError:
            if time.monotonic() + pause > give_up:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 15.0)


class PushHandler:
    trigger: ClassVar[str] = "push"

    def timeout_s(self, run: RunRecord) -> float:
        """Until the run's bound (--max-hours, --max-cost), plus a minute to clean up."""
        limit = run_limit(run.options, run.pod_started_at or utcnow(), run.cost_per_hr)
        left = (limit.at - utcnow()).total_seconds() if limit is not None else 0.0
        return max(left, 0.0) + 60.0

    def run(self, ctx: StepContext) -> StepResult:
        try:
            return self._follow(ctx)
        except PodGone as gone:
            return self._after_pod_gone(ctx, gone)

    def _follow(self, ctx: StepContext) -> StepResult:
        paths, rendered = rendered_for_run(ctx)
        if pod_is_gone(ctx):  # ask the API first: SSH to a gone pod waits out its timeout
            raise PodGone(f"Pod {ctx.run.pod_id} is gone.")
        shell = open_shell(ctx)
        follow_job(ctx, shell, "train", "train").require_success("Training", "training_failed")
        ctx.output.event("train_done", "Training finished.")
        if rendered.merge:
            ctx.output.event("merge_start", "Merging the LoRA adapter into the base model.")
            start_job(
                shell, paths.run_dir, "merge", ["bash", "train.sh", *(rendered.merge_command or [])]
            )
            follow_job(ctx, shell, "merge", "merge").require_success("Merge", "push_failed")
        hub_id = ctx.run.hub_model_id or ""
        latest = hub_has_push(ctx)
        if latest is None:
            raise RemoteError(
                f"Training ended, but {hub_id} shows no commit made after it started: "
                "the push did not happen.",
                reason="push_failed",
            )
        ctx.output.event("pushed", f"Model pushed to {hub_id}.")
        return StepResult(message=f"Pushed to {hub_id} (commit at {latest.isoformat()}).")

    def _after_pod_gone(self, ctx: StepContext, gone: PodGone) -> StepResult:
        """Finish from what is known: the Hub, the deadline, else the pod was lost."""
        hub_id = ctx.run.hub_model_id or ""
        latest = hub_has_push(ctx)
        if latest is not None:
            ctx.output.event("pushed", f"Model pushed to {hub_id}; the pod had already ended.")
            return StepResult(
                message=f"Pushed to {hub_id} (commit at {latest.isoformat()}); "
                "the pod had terminated itself."
            )
        run = ctx.run
        limit = run_limit(run.options, run.pod_started_at, run.cost_per_hr)
        if limit is not None and limit.passed(utcnow()):
            bound = "--max-cost" if limit.reason == "max_cost" else "--max-hours"
            raise RemoteError(
                f"The run reached its {bound} bound; its pod was terminated.", reason=limit.reason
            )
        raise RemoteError(
            f"{gone.message} The Hub shows no push: the job failed or stopped with nobody "
            "following (the pod's watchdog then ends it), or the pod was lost.",
            reason="pod_lost",
        )
