"""A run's pod shell is reused for the same pod only: a restart's new pod gets its own."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, cast

import pytest

import thinnka.pod.shell as pod_shell
from thinnka.services import ShellPool
from thinnka.step import StepContext


class _Shell:
    def __init__(self, target: Any) -> None:
        self.target = target

    def is_active(self) -> bool:
        return True  # a half-open connection to a lost pod looks just as alive


def _context(pool: ShellPool, pod_id: str) -> StepContext:
    run = SimpleNamespace(
        id="r-1", pod_id=pod_id, ssh_host="127.0.0.1", ssh_port=2222, host_key=None, options=None
    )
    services = SimpleNamespace(shells=pool)
    return cast(
        StepContext,
        SimpleNamespace(
            run=run,
            services=services,
            settings=SimpleNamespace(extra={}),
            deadline=time.monotonic() + 5,
        ),
    )


def test_a_new_pod_of_the_run_gets_a_new_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[_Shell] = []

    def connect(target: Any, *, deadline: float) -> _Shell:
        opened.append(_Shell(target))
        return opened[-1]

    # No SSH here: what is under test is which shell the pool hands back.
    monkeypatch.setattr(pod_shell, "connect", connect)
    monkeypatch.setattr(
        pod_shell,
        "resolve_key_pair",
        lambda options, settings: SimpleNamespace(private_key_path="k"),
    )
    pool = ShellPool()
    lost = pod_shell.open_shell(_context(pool, "pod-a"))
    assert pod_shell.open_shell(_context(pool, "pod-a")) is lost  # same pod: reused
    # The restart's pod answers at the same address (the emulator's one sshd, or a reused
    # host port): the lost pod's connection must not be taken for it.
    new = pod_shell.open_shell(_context(pool, "pod-b"))
    assert new is not lost and len(opened) == 2
