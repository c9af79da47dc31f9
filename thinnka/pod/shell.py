"""Reaching the pod of a run over SSH (shared by the steps after connect)."""

from __future__ import annotations

import time

from thinnka.clients.ssh import PodShell, SshTarget, connect
from thinnka.errors import StateConflict
from thinnka.pod.keys import resolve_key_pair
from thinnka.services import Services
from thinnka.step import StepContext

__all__ = ["open_shell", "shell_to", "ssh_user"]


def ssh_user(ctx: StepContext) -> str:
    # Runpod pods log in as root; THINNKA_SSH_USER exists for the emulated pods.
    return ctx.settings.extra.get("THINNKA_SSH_USER") or "root"


def open_shell(ctx: StepContext, *, timeout: float = 120.0) -> PodShell:
    """The run's pod shell, reusing one opened earlier in this process to the same pod.

    Keyed by pod, not by run: after a restart the run has a new pod, and a connection to
    the lost one must not be reused (on Runpod it hangs half-open until TCP gives up; in
    the emulator, where every pod is one sshd, it reaches the new pod with the lost pod's
    env, so the new pod's watchdog would watch the wrong pod)."""
    run = ctx.run
    if run.ssh_host is None or run.ssh_port is None:
        raise StateConflict(f"Run {run.id} has no SSH address recorded.")
    shell, _ = shell_to(ctx, run.pod_id, run.ssh_host, run.ssh_port, run.host_key, timeout=timeout)
    return shell


def shell_to(
    ctx: StepContext,
    pod_id: str | None,
    host: str,
    port: int,
    pinned_host_key: str | None,
    *,
    timeout: float,
) -> tuple[PodShell, bool]:
    """A shell on one pod of the run (the run's pod, or a cluster node), reused from this
    process's pool while connected; True when it was opened now."""
    key = f"{ctx.run.id}@{pod_id}"
    shell = ctx.services.shells.get(key)
    if shell is not None:
        return shell, False
    target = SshTarget(
        host=host,
        port=port,
        user=ssh_user(ctx),
        key_path=resolve_key_pair(ctx.run.options, ctx.settings).private_key_path,
        pinned_host_key=pinned_host_key,
    )
    shell = connect(target, deadline=min(ctx.deadline, time.monotonic() + timeout))
    ctx.services.shells.put(key, shell)
    return shell, True


def close_shells(services: Services) -> None:
    services.shells.close_all()
