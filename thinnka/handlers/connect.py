"""provisioned → connected: the pod's public SSH port answers; its host key is pinned.

The host key is recorded the moment the first connection shows it, not with the
transition: a crash in between must not mean trusting whatever key answers on
the next attempt.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import ClassVar

from thinnka.clients.runpod import Pod
from thinnka.errors import RemoteError, StepTimeout
from thinnka.handlers.base import StepContext, StepResult
from thinnka.handlers.pod import open_shell
from thinnka.store import RunRecord
from thinnka.store.models import utcnow

__all__ = ["ConnectHandler", "wait_for_ssh_port"]


def wait_for_ssh_port(ctx: StepContext, pod_id: str, deadline: float) -> Pod:
    """Poll the pod until its public 22/tcp mapping shows.

    Quick at first, then once a second: a booting pod costs money every
    second, so noticing its port late costs more than the extra requests.
    """
    delay = 0.5
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
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


class ConnectHandler:
    trigger: ClassVar[str] = "connect"

    def timeout_s(self, run: RunRecord) -> float:
        minutes = run.options.ssh_timeout_min
        if run.pod_started_at is not None:  # a resumed wait keeps the original budget
            elapsed = (utcnow() - run.pod_started_at) / dt.timedelta(seconds=1)
            return max(60.0, minutes * 60 - elapsed)
        return minutes * 60.0

    def run(self, ctx: StepContext) -> StepResult:
        assert ctx.run.pod_id is not None
        ctx.output.event("ssh_wait", "Waiting for SSH port 22.")
        pod = wait_for_ssh_port(ctx, ctx.run.pod_id, ctx.deadline)
        port = pod.public_ssh()
        assert port is not None
        ctx.save(ssh_host=port.ip, ssh_port=port.public_port)
        shell = open_shell(ctx, timeout=max(30.0, ctx.remaining()))
        if ctx.run.host_key is None:
            ctx.save(host_key=shell.host_key)
        ctx.output.event("ssh_connected", "SSH connected.")
        return StepResult(message=f"SSH open at {port.ip}:{port.public_port}.")
