"""provisioned → connected: the pod's public SSH port answers; its host key is pinned.

The host key is recorded the moment the first connection shows it, not with the
transition: a crash in between must not mean trusting whatever key answers on
the next attempt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable
from typing import ClassVar

from thinnka.clients.runpod import Pod
from thinnka.clients.ssh import load_ssh_client
from thinnka.errors import RemoteError, StepTimeout
from thinnka.handlers.base import rendered_for_run
from thinnka.pod.paths import run_dir_for
from thinnka.pod.shell import open_shell
from thinnka.pod.watchdog import touch_heartbeat
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord
from thinnka.store.models import utcnow

__all__ = ["ConnectHandler", "wait_for_ssh_port"]

# The poll: every 0.1 s in the first second (a pod from a cached image, or a resumed one, is
# up in about a second, and each late poll of it is billed), then waits growing by half up
# to 1 s: a cold pod takes from 20 s to minutes, and Runpod's API allows about a request a
# second per key (its documented example policy: 60 a minute).
_QUICK_POLL_S = 0.1
_QUICK_POLLS = 10
_LAST_POLL_S = 1.0


def wait_for_ssh_port(
    ctx: StepContext,
    pod_id: str,
    deadline: float,
    *,
    while_waiting: Callable[[], object] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Pod:
    """Poll the pod until its public 22/tcp mapping shows.

    Quick in the first second (a resumed or cached pod is up in moments), then
    backing off to once a second: a booting pod costs money every second, so
    noticing its port late costs more than the extra requests. ``while_waiting``
    runs once, in the first wait, which it shortens by the time it took (work the
    next step needs anyway, done while the pod boots).
    """
    delay = _QUICK_POLL_S
    polls = 0
    while True:
        ctx.check_cancelled()
        pod = ctx.services.runpod.get_pod(pod_id)
        if pod is None:
            raise RemoteError(f"Pod {pod_id} vanished while waiting for SSH.", reason="pod_gone")
        if pod.desired_status in ("EXITED", "TERMINATED", "DEAD", "ERROR"):  # ERROR: REST v2
            raise RemoteError(
                f"Pod {pod_id} stopped ({pod.desired_status}) while waiting for SSH.",
                reason="pod_gone",
            )
        if pod.public_ssh() is not None:
            return pod
        if time.monotonic() + delay > deadline:
            raise StepTimeout("SSH port did not become available in time.")
        started = time.monotonic()
        if while_waiting is not None:
            while_waiting()
            while_waiting = None
        sleep(max(0.0, delay - (time.monotonic() - started)))
        polls += 1
        if polls >= _QUICK_POLLS:
            delay = min(delay * 1.5, _LAST_POLL_S)


class ConnectHandler:
    trigger: ClassVar[str] = "connect"

    def timeout_s(self, run: RunRecord) -> float:
        minutes = run.options.ssh_timeout_min
        created = run.remote.restarts.pod_at or run.pod_started_at  # this pod's creation
        if created is not None:  # a resumed wait keeps the original budget
            elapsed = (utcnow() - created) / dt.timedelta(seconds=1)
            return max(60.0, minutes * 60 - elapsed)
        return minutes * 60.0

    def run(self, ctx: StepContext) -> StepResult:
        assert ctx.run.pod_id is not None
        ctx.output.event("ssh_wait", "Waiting for SSH port 22.")
        pod = wait_for_ssh_port(
            ctx, ctx.run.pod_id, ctx.deadline, while_waiting=lambda: _while_booting(ctx)
        )
        port = pod.public_ssh()
        assert port is not None
        ctx.save(ssh_host=port.ip, ssh_port=port.public_port)
        shell = open_shell(ctx, timeout=max(30.0, ctx.remaining()))
        if ctx.run.host_key is None:
            ctx.save(host_key=shell.host_key)
        # First contact: from now on the pod's boot guard allows the orphan grace until the
        # first job starts (thinnka.pod.bootguard), measured from this heartbeat.
        run_dir = run_dir_for(ctx.settings, ctx.run.id)
        shell.make_dirs(run_dir)
        touch_heartbeat(shell, run_dir)
        if ctx.run.options.multi_node:  # every other node of the cluster, keys pinned per node
            from thinnka.handlers.cluster import connect_workers

            connect_workers(ctx, run_dir, wait_for_ssh_port)
        ctx.output.event("ssh_connected", "SSH connected.")
        return StepResult(message=f"SSH open at {port.ip}:{port.public_port}.")


def _while_booting(ctx: StepContext) -> None:
    """Work the next steps need anyway, done while the pod boots: fabric's import (a fifth
    of a second), ``HfApi``'s (the train step asks the Hub for the newest commit with it), and
    the run's rendering (which install, train and push then reuse)."""
    load_ssh_client()
    ctx.services.hub.prepare_later_calls()
    # Whatever rendering raises is raised again, and reported, by the step that renders.
    with contextlib.suppress(Exception):
        rendered_for_run(ctx)
