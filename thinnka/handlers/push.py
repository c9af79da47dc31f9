"""training → pushed: follow the training to its end, then verify the Hub has its final model.

The trainer pushes (``push_to_hub``), and with it every checkpoint on the way
(transformers pushes at every save; creating the repo is a commit too). So a new
commit proves nothing: after the chain's last job exited 0, the pod writes
``thinnka-run.json`` naming this run (``recipes/scripts/thinnka_mark.py``), and
only that file, with this run's id, at the head of the target repo is a push.
Without it, the run failed, whatever the exit code said.

When the pod is gone (its watchdog terminated it after an unfollowed end, it
hit its deadline, or the host was lost), the run is finished from what is
known: this run's final push is a success; past the deadline it failed with
``max_duration``/``max_cost``; otherwise the pod was lost (``pod_lost``). A
failure says what the Hub holds (a checkpoint at step N), so it can be used.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar

from thinnka.clients.hub import HubCommit
from thinnka.clients.ssh import PodShell
from thinnka.errors import RemoteError, ThinnkaError, TransientError
from thinnka.handlers.base import rendered_for_run
from thinnka.options.limits import push_hold_s, run_limit
from thinnka.pod.jobs import PodGone, follow_job, pod_is_gone, start_job
from thinnka.pod.scores import collect_marker_scores, collect_scores
from thinnka.pod.shell import open_shell, ssh_user
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord
from thinnka.store.models import utcnow

__all__ = ["RUN_MARKER", "HubPush", "PushHandler", "hub_has_push", "hub_push"]

T = TypeVar("T")

# Written by the pod after the final push (recipes/scripts/thinnka_mark.py's MARKER).
RUN_MARKER = "thinnka-run.json"

# The push check decides a whole training (no final push: failed, pod terminated), so a
# Hub that fails transiently is asked again, with pauses, for up to this long in all (within
# the step's deadline): more than one client call's few quick retries.
_VERIFY_S = 120.0
_VERIFY_PAUSE_S = 1.0
_LIMIT_REASONS = frozenset({"max_duration", "max_cost"})
# train.sh's exit status when the trainer saved its model but neither it nor thinnka_push.py
# (with its own bounded retries) could push it: the model is only on the pod.
PUSH_HELD_EXIT = 75  # recipes/scripts/thinnka_push.py's HELD, thinnka_watchdog.py's too
# transformers' commit titles for a checkpoint pushed during training (hub_strategy).
_CHECKPOINT = re.compile(r"Training in progress, (step|epoch) (\d+)")


@dataclass(frozen=True)
class HubPush:
    """What the target repo shows of this run."""

    repo_id: str
    latest: HubCommit | None  # the newest commit, when it is newer than the baseline
    final: bool  # this run's marker is at the head: its final model is there

    def describe(self) -> str:
        """One sentence on what the repo holds of this run, for a failure message."""
        latest = self.latest
        if latest is None:
            return f"{self.repo_id} shows no commit made after the training started."
        when = latest.created_at.isoformat(timespec="seconds")
        checkpoint = _CHECKPOINT.search(latest.title)
        if checkpoint is not None:
            return (
                f"{self.repo_id} holds an intermediate checkpoint at {checkpoint[1]} "
                f"{checkpoint[2]} (commit {latest.commit_id[:12]}, {when}), not the final model."
            )
        title = latest.title.strip().lower()
        if title == "initial commit":
            return f"{self.repo_id} was created ({when}), but nothing was pushed to it."
        if title == "end of training":  # transformers' final push, not recorded as this run's
            return (
                f"{self.repo_id} holds a trainer's end-of-training push (commit "
                f"{latest.commit_id[:12]}, {when}), but this run never recorded it as its final "
                f"push ({RUN_MARKER}): check it before using it."
            )
        return (
            f"{self.repo_id}'s newest commit ({latest.title!r}, {latest.commit_id[:12]}, {when}) "
            "is not this run's final push."
        )


def hub_push(ctx: StepContext) -> HubPush:
    """The target repo's newest commit (when newer than the one seen before training) and
    whether this run's final-push marker is at its head. Transient errors are asked again
    for up to ``_VERIFY_S`` in all (within the step's deadline); a refused token never."""
    repo_id = ctx.run.hub_model_id or ""
    give_up = time.monotonic() + min(_VERIFY_S, max(ctx.remaining(), 0.0))
    latest = _asked(lambda: ctx.services.hub.latest_commit(repo_id), give_up)
    baseline = ctx.run.remote.hub_baseline
    if latest is None or (baseline is not None and latest.created_at <= baseline):
        return HubPush(repo_id, None, final=False)
    marker = _asked(lambda: ctx.services.hub.json_at_head(repo_id, RUN_MARKER), give_up)
    # The run id alone tells this run's final push from a checkpoint (no marker yet) and
    # from another run's (its own id): ids are unique, and only the final job writes it.
    final = marker is not None and marker.get("run_id") == ctx.run.id
    return HubPush(repo_id, latest, final=final)


def hub_has_push(ctx: StepContext) -> dt.datetime | None:
    """When this run's final push was verified on the Hub (its newest commit); None without."""
    pushed = hub_push(ctx)
    return pushed.latest.created_at if pushed.final and pushed.latest else None


def _asked(call: Callable[[], T], give_up: float) -> T:
    """``call()``, retried after transient errors until ``give_up`` (monotonic)."""
    pause = _VERIFY_PAUSE_S
    while True:
        try:
            return call()
        except TransientError:
            if time.monotonic() + pause > give_up:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 15.0)


def _what_the_hub_holds(ctx: StepContext) -> str:
    """``HubPush.describe`` for a failure message; a Hub that cannot be asked is said so,
    never allowed to replace the failure being reported."""
    try:
        return hub_push(ctx).describe()
    except ThinnkaError as exc:
        return f"What {ctx.run.hub_model_id} holds could not be checked ({exc.message})."


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
        except RemoteError as exc:
            if exc.reason not in _LIMIT_REASONS:
                raise
            # Stopped at its bound while followed: say what of it can still be used.
            raise RemoteError(
                f"{exc.message} {_what_the_hub_holds(ctx)}", reason=exc.reason
            ) from exc

    def _follow(self, ctx: StepContext) -> StepResult:
        paths, rendered = rendered_for_run(ctx)
        if pod_is_gone(ctx):  # ask the API first: SSH to a gone pod waits out its timeout
            raise PodGone(f"Pod {ctx.run.pod_id} is gone.")
        shell = open_shell(ctx)
        trained = follow_job(ctx, shell, "train", "train")
        if trained.exit_code == PUSH_HELD_EXIT:
            raise self._push_held(ctx, shell, paths.run_dir)
        if trained.exit_code != 0 and ctx.run.options.multi_node:
            from thinnka.handlers.cluster import require_workers

            require_workers(ctx, trained.exit_code)  # a lost node is what failed it
        trained.require_success("Training", "training_failed")
        ctx.output.event("train_done", "Training finished.")
        if rendered.merge:
            ctx.output.event("merge_start", "Merging the LoRA adapter into the base model.")
            start_job(
                shell, paths.run_dir, "merge", ["bash", "train.sh", *(rendered.merge_command or [])]
            )
            follow_job(ctx, shell, "merge", "merge").require_success("Merge", "push_failed")
        hub_id = ctx.run.hub_model_id or ""
        pushed = hub_push(ctx)
        if not pushed.final or pushed.latest is None:
            raise RemoteError(
                f"Training ended, but {hub_id} shows no final push of this run ({RUN_MARKER} "
                f"naming {ctx.run.id}): the push did not happen. {pushed.describe()}",
                reason="push_failed",
            )
        ctx.output.event("pushed", f"Model pushed to {hub_id}.")
        collect_scores(ctx, shell, paths.run_dir)  # before/after, when the run evaluated
        when = pushed.latest.created_at.isoformat()
        return StepResult(message=f"Pushed to {hub_id} (commit at {when}).")

    def _push_held(self, ctx: StepContext, shell: PodShell, run_dir: str) -> RemoteError:
        """The model is saved on the pod, its push failed for good: keep the pod for the
        push hold (recorded, so cleanup and `recover` leave it until then) and say how to
        push it by hand. The token is on the pod already; the command names none."""
        run = ctx.run
        try:
            held = json.loads(shell.read_from(f"{run_dir}/push.held", 0) or b"{}")
        except ValueError:
            held = {}
        hold = push_hold_s(run.options)
        until = utcnow() + dt.timedelta(seconds=hold)
        limit = run_limit(run.options, run.pod_started_at or utcnow(), run.cost_per_hr)
        if limit is not None and limit.at < until:  # never billed past the run's own bound
            until = limit.at
        ctx.save(remote=replace(run.remote, push_hold_until=until))
        kept = max((until - utcnow()).total_seconds(), 0.0)
        command = str(held.get("command") or f"cd {run_dir} && python thinnka_push.py")
        login = f"{ssh_user(ctx)}@{run.ssh_host}" if run.ssh_host else "the pod"
        ssh = f"ssh -p {run.ssh_port} {login}" if run.ssh_port else f"ssh {login}"
        output_dir = held.get("output_dir") or run.remote.output_dir or "its output folder"
        error = held.get("error") or "see the log"
        return RemoteError(
            f"Training finished and saved the model in {output_dir} on pod {run.pod_id}, but "
            f"pushing it to {run.hub_model_id} failed after retries ({error}). The pod is kept "
            f"with the model for {_duration(kept)} (until "
            f"{until.strftime('%Y-%m-%d %H:%M:%S')} UTC), then terminated; push it by hand "
            f"meanwhile: {ssh} {shlex.quote(command)}",
            reason="push_failed",
        )

    def _after_pod_gone(self, ctx: StepContext, gone: PodGone) -> StepResult:
        """Finish from what is known: this run's final push, the deadline, else the pod was
        lost. Only the final push (its marker) is a success: a checkpoint pushed before the
        pod stopped is named in the failure, so it can be used."""
        hub_id = ctx.run.hub_model_id or ""
        pushed = hub_push(ctx)
        if pushed.final and pushed.latest is not None:
            ctx.output.event("pushed", f"Model pushed to {hub_id}; the pod had already ended.")
            collect_marker_scores(ctx, RUN_MARKER)  # the pod's scores.json went with it
            return StepResult(
                message=f"Pushed to {hub_id} (commit at {pushed.latest.created_at.isoformat()}); "
                "the pod had terminated itself."
            )
        run = ctx.run
        limit = run_limit(run.options, run.pod_started_at, run.cost_per_hr)
        if limit is not None and limit.passed(utcnow()):
            bound = "--max-cost" if limit.reason == "max_cost" else "--max-hours"
            raise RemoteError(
                f"The run reached its {bound} bound before its training ended; its pod was "
                f"terminated. {pushed.describe()}",
                reason=limit.reason,
            )
        raise RemoteError(
            f"{gone.message} The Hub shows no final push of this run: the job failed or "
            "stopped with nobody following (the pod's watchdog then ends it), or the pod was "
            f"lost. {pushed.describe()}",
            reason="pod_lost",
        )


def _duration(seconds: float) -> str:
    """How long a pod is kept, for a message: 1 h, 25 min, 60 s."""
    if seconds >= 3600 and seconds % 3600 < 60:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
