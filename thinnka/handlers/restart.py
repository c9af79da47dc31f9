"""training → estimated (``restart``): the pod was lost under the training; a new one resumes it.

When the push step finds the pod gone (deleted by Runpod, EXITED, or the stream broke and
the API says it is not running) and the Hub shows no final push, the run would fail with
``pod_lost``, every step trained so far paid for and lost. Instead, at most
``--max-restarts`` times, ``plan_restart`` finds the last checkpoint that outlived the pod
(``thinnka.planning.checkpoints``: a "..., checkpoint" commit of this run on the Hub, or a
save the trainer logged to the network volume), ends the old pod if it still exists (an
EXITED pod bills its disk), books its cost, and returns the facts the runner records with
the ``restart`` transition: no pod, no SSH, the checkpoint to resume from. The run then
takes the usual way again (provision, connect, install, train), and the training resumes
(``recipes/scripts/thinnka_restore.py``, the trainer's ``get_last_checkpoint``). A loss
before any checkpoint restarts from scratch, once.

``--max-hours`` and ``--max-cost`` keep counting from the first pod's creation
(``runs.pod_started_at`` is kept), so they bound all the pods together.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from thinnka.errors import StateConflict, StoreError, ThinnkaError
from thinnka.planning.checkpoints import checkpoint_cadence
from thinnka.store.models import utcnow
from thinnka.store.records import TerminationFacts
from thinnka.store.restart_facts import EarlierPod, RestartFacts

if TYPE_CHECKING:
    from thinnka.clients.ssh import PodShell
    from thinnka.step import StepContext

__all__ = ["Restart", "checkpoint_in_log", "checkpoint_on_hub", "forget_jobs", "plan_restart"]

# transformers' commit title for the last-checkpoint/ upload (hub_strategy="checkpoint").
_HUB_CHECKPOINT = re.compile(r"Training in progress, step (\d+), checkpoint")
# transformers' log line for each save (log_level info, which every recipe sets).
_SAVED = re.compile(rb"Saving model checkpoint to \S*checkpoint-(\d+)")
_JOBS = ("setup", "train", "merge")
_TERMINATE_S = 120.0
RESTART_TIMEOUT_S = 300.0  # asking the Hub, and ending what is left of the old pod


@dataclass(frozen=True)
class Restart:
    """What the runner records with the ``restart`` transition."""

    message: str
    updates: dict[str, Any]
    # For the `restart` event's payload: the checkpoint's step (None: from scratch), the
    # restart's number, the lost pod.
    fields: dict[str, Any]


def checkpoint_repo(ctx: StepContext) -> str:
    """The repo the trainer pushes its checkpoints to: the target, or with --merge-model the
    adapter's own repo (the merged model goes to the target)."""
    from thinnka.handlers.base import rendered_for_run

    _, rendered = rendered_for_run(ctx)
    return str(rendered.recipe.get("hub_model_id") or ctx.run.hub_model_id or "")


def checkpoint_on_hub(ctx: StepContext) -> tuple[int, str] | None:
    """(step, commit) of this run's newest checkpoint upload to the trainer's repo: a commit
    made after the training started (the repo has one live run at a time)."""
    baseline = ctx.run.remote.hub_baseline
    for commit in ctx.services.hub.commits(checkpoint_repo(ctx)):
        if baseline is not None and commit.created_at <= baseline:
            break
        found = _HUB_CHECKPOINT.search(commit.title)
        if found is not None:
            return int(found[1]), commit.commit_id
    return None


def checkpoint_in_log(ctx: StepContext) -> int | None:
    """The step of the last save the trainer logged (the local copy of the pod's output);
    on a network volume that checkpoint is still there for the next pod."""
    path = ctx.settings.remote_log(ctx.run.id)
    try:
        text = path.read_bytes()
    except OSError:
        return None
    steps = [int(m[1]) for m in _SAVED.finditer(text)]
    return steps[-1] if steps else None


def forget_jobs(shell: PodShell, run_dir: str) -> None:
    """A new pod on a network volume finds the lost pod's job files in the run folder;
    without this, starting a job would adopt the dead one (``mkdir NAME.started``)."""
    names = " ".join(f"{job}.{kind}" for job in _JOBS for kind in ("started", "pid", "exit"))
    shell.run(f"cd '{run_dir}' 2>/dev/null && rm -rf {names} push.held || true")


def plan_restart(ctx: StepContext) -> Restart | str:
    """The restart of a run whose pod was lost in training, or why there is none ("" when
    ``--max-restarts 0`` asks for none)."""
    from thinnka.handlers.terminate import terminate_and_confirm

    run, options = ctx.run, ctx.run.options
    facts = run.remote.restarts
    if options.max_restarts == 0:
        return ""
    if options.multi_node:  # a lost node fails the run: a new cluster is not rented for it
        return "Not restarted: a cluster run (--nodes) is not restarted on a new cluster."
    if facts.count >= options.max_restarts:
        return f"Not restarted: --max-restarts {options.max_restarts} reached."
    where = checkpoint_cadence(options).where
    step: int | None
    commit: str | None = None
    if where == "hub":
        found = checkpoint_on_hub(ctx)
        step, commit = found if found is not None else (None, None)
    else:
        step = checkpoint_in_log(ctx)
    if step is None and facts.from_scratch:
        return (
            "Not restarted: no checkpoint was saved, and the run already restarted from "
            "scratch once."
        )
    lost = run.pod_id
    if lost is not None and ctx.services.runpod.get_pod(lost) is not None:
        terminate_and_confirm(ctx.services.runpod, lost, time.monotonic() + _TERMINATE_S)
    now = utcnow()
    started = facts.pod_at or run.pod_started_at
    hours = (now - started).total_seconds() / 3600 if started is not None else 0.0
    earlier = EarlierPod(
        pod_id=lost or "?",
        gpu_type=run.gpu_type,
        cost_per_hr=run.cost_per_hr,
        started_at=started,
        ended_at=now,
        cost_usd=round((run.cost_per_hr or 0.0) * max(hours, 0.0), 6),
        why="lost during training",
    )
    count = facts.count + 1
    restarts = RestartFacts(
        count=count,
        from_scratch=facts.from_scratch or step is None,
        step=step,
        commit=commit,
        pod_at=None,
        pods=(*facts.pods, earlier),
    )
    remote = replace(
        run.remote,
        train_pid=None,
        logs={},
        push_hold_until=None,
        termination=TerminationFacts(),
        restarts=restarts,
    )
    source = "on the Hub" if where == "hub" else "on the network volume"
    if step is None:
        how = "no checkpoint was saved before the loss: the training restarts from scratch (once)"
    else:
        how = f"resuming from the checkpoint at step {step} {source}"
    return Restart(
        message=(
            f"Pod {lost} was lost during training; a new pod takes over, {how} "
            f"(restart {count} of {options.max_restarts})."
        ),
        updates={
            "pod_id": None,
            "ssh_host": None,
            "ssh_port": None,
            "host_key": None,
            "remote": remote,
            "cost_usd": restarts.earlier_cost,
        },
        fields={"step": step, "restart": count, "lost_pod": lost},
    )


def restart_for(ctx: StepContext, error: ThinnkaError) -> tuple[Restart | None, ThinnkaError]:
    """(the restart to record, ``error``), or (None, ``error`` saying why there is none).
    The Hub or Runpod failing to answer means no restart: the run fails as it would have."""
    try:
        planned = plan_restart(ctx)
    except (StateConflict, StoreError):
        raise  # nothing can be recorded for this run here
    except ThinnkaError as exc:
        planned = f"Not restarted: {exc.message}"
    if isinstance(planned, Restart):
        return planned, error
    if not planned:  # --max-restarts 0: today's failure, unchanged
        return None, error
    return None, ThinnkaError(f"{error.message} {planned}", reason=error.reason)
