"""installed → training: the trainer runs detached on the pod; its pid is recorded.

Starting is guarded on the pod (``mkdir train.started``), so running this
step again after a crash finds the training already started and adopts it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from thinnka.handlers.base import rendered_for_run
from thinnka.pod.jobs import require_pod, start_job
from thinnka.pod.shell import open_shell
from thinnka.pod.watchdog import arm_watchdog
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord
from thinnka.store.models import utcnow

__all__ = ["TrainHandler"]


class TrainHandler:
    trigger: ClassVar[str] = "train"

    def timeout_s(self, run: RunRecord) -> float:
        return 300.0

    def run(self, ctx: StepContext) -> StepResult:
        paths, rendered = rendered_for_run(ctx)
        require_pod(ctx, "training could start")
        if ctx.run.remote.train_started_at is None:
            # The newest commit before training; the push step wants one after it.
            # Comparing Hub times with Hub times keeps local clock skew out of it.
            baseline = ctx.services.hub.last_commit_at(ctx.run.hub_model_id or "")
            started = utcnow()
            ctx.save(
                remote=replace(ctx.run.remote, hub_baseline=baseline, train_started_at=started)
            )
        shell = open_shell(ctx)
        arm_watchdog(ctx, shell)  # again: the config now carries the pod's price and start
        mode = ctx.run.options.mode.upper()
        ctx.output.event("train_start", f"Starting {mode} training.")
        argv = ["bash", "train.sh", *rendered.command]
        if ctx.run.options.multi_node:  # the other nodes first: rank 0 is the one followed
            from thinnka.handlers.cluster import start_worker_jobs

            start_worker_jobs(ctx, paths, "train", argv)
        pid = start_job(shell, paths.run_dir, "train", argv)
        remote = replace(ctx.run.remote, train_pid=pid)
        return StepResult(message=f"Training started (pid {pid}).", updates={"remote": remote})
