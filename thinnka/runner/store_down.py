"""The database failed under a run: stop it without recording anything.

Nothing about the run can be recorded, so no step can go on. The pods the runner knows of
(in memory: a create whose id could not be written included) are terminated now, unless
their training runs (then the pod's watchdog ends it, as after Ctrl-C); a cluster goes
whole. A stop note in the state folder tells ``recover`` why the run stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from thinnka.errors import StoreError
from thinnka.lease import write_stop_note
from thinnka.machine import RunState
from thinnka.services import Services
from thinnka.settings import Settings
from thinnka.step import Output
from thinnka.store import RunRecord

__all__ = ["StoppedRun", "stop_without_store"]


@dataclass(frozen=True)
class StoppedRun:
    """The run as last known in memory, with the pods and clusters it created."""

    run: RunRecord
    pods: list[str]
    clusters: list[str]


def stop_without_store(
    stopped: StoppedRun,
    error: StoreError,
    *,
    services: Services,
    settings: Settings,
    output: Output,
    owner: str,
) -> StoreError:
    """Terminate what can be, leave the stop note, and return the one line to show."""
    run = stopped.run
    following = run.state in (RunState.training, RunState.pushed)
    done: list[str] = []
    left: dict[str, str] = {}
    if following:
        left = dict.fromkeys(stopped.pods, "left to its watchdog")
    else:
        for pod_id in stopped.pods:
            output.event("cleanup_start", f"Terminating pod {pod_id}.")
        from thinnka.handlers.terminate import terminate_without_store

        cluster = run.options.multi_node  # its nodes go with their cluster, whole
        done, left = terminate_without_store(
            services, run.id, stopped.pods,
            clusters=stopped.clusters, cluster_name=run.pod_name if cluster else None,
        )  # fmt: skip
    write_stop_note(
        settings.state_dir, run.id, owner, why=f"the database was unavailable "
        f"({error.cause})", state=run.state.value, terminated=done, left=left,
    )  # fmt: skip
    said = [f"{error.message} Run {run.id} stopped"]
    if following:
        said.append(f"following its training; the pod's watchdog ends pod "
                    f"{', '.join(left)} once the training has ended")  # fmt: skip
    else:
        if done:
            said.append(f"pod {', '.join(done)} terminated")
        said += [f"pod {pod_id} could not be terminated ({why}): run `thinnka reap`"
                 for pod_id, why in left.items()]  # fmt: skip
        if not done and not left:
            said.append("before any pod existed")
    then = f"`thinnka resume {run.id}`" if following else "`thinnka recover`"
    return StoreError(
        "; ".join(said) + f". Once the database works again, {then} records the run.",
        cause=error.cause,
    )
