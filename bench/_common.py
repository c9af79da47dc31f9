"""Shared bits of the benchmarks: timing helpers and the emulated world outside pytest."""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from tests.plugins.thinnka_world import World
    from tests.world.hub import FakeHub
    from tests.world.runpod import FakeRunpod
    from tests.world.sshd import FakeSshd


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def report(name: str, samples: list[float], goal: float | None = None) -> None:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    line = (
        f"{name}: median {statistics.median(samples):.3f} s, p95 {p95:.3f} s, "
        f"min {samples[0]:.3f} s, n={len(samples)}"
    )
    if goal is not None:
        line += f" (goal < {goal} s: {'met' if statistics.median(samples) < goal else 'MISSED'})"
    print(line, flush=True)


@dataclass(frozen=True)
class Emulated:
    """The running emulated world: an sshd pod, the Runpod emulator (its pods' SSH is that
    sshd, keys a pod is created with get authorized there) and the Hub emulator."""

    root: Path
    sshd: FakeSshd
    runpod: FakeRunpod
    hub: FakeHub

    def world(self, name: str, pod_venv: Path) -> World:
        """A fresh working folder ``root/name`` whose .env points thinnka at this world."""
        from tests.plugins.thinnka_world import build_world

        return build_world(self.root / name, self.runpod, self.hub, self.sshd, pod_venv)

    def pod_venv(self, name: str = "pod-venv", *, standin: bool = False) -> Path:
        """The pods' trainer venv (see tests/plugins/thinnka_world.py); with ``standin``,
        its ``accelerate`` is the stand-in trainer of tests/world/standin_trainer.py."""
        from tests.plugins.thinnka_world import make_pod_venv
        from tests.world.standin_trainer import install_standin

        venv = make_pod_venv(self.root / name)
        return install_standin(venv) if standin else venv


@contextmanager
def emulated_world(
    root: Path | None = None, *, boot_delay: float | None = None, pod_home: Path | None = None
) -> Iterator[Emulated]:
    """Start sshd + Runpod + Hub as the tests' fixtures do; stop them (and remove a
    temporary ``root``) on the way out, whatever happened. ``root``, when given, is kept.
    ``boot_delay``: seconds from a pod's create to its SSH port showing (default: the
    emulator's own). ``pod_home``: the pods' HOME (default: a home of their own with an
    image's stock bashrc, see tests/world/sshd.py)."""
    from tests.world.hub import FakeHub
    from tests.world.runpod import FakeRunpod
    from tests.world.sshd import FakeSshd

    folder = root if root is not None else Path(tempfile.mkdtemp(prefix="thinnka-bench-"))
    try:
        with ExitStack() as servers:
            sshd = servers.enter_context(FakeSshd(folder / "sshd", home=pod_home))
            delay = {} if boot_delay is None else {"boot_delay": boot_delay}
            runpod = servers.enter_context(
                FakeRunpod(
                    ssh_host=sshd.host, ssh_port=sshd.port, authorize_key=sshd.authorize, **delay
                )
            )
            hub = servers.enter_context(FakeHub())
            yield Emulated(folder, sshd, runpod, hub)
    finally:
        if root is None:
            shutil.rmtree(folder, ignore_errors=True)
