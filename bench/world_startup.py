"""Startup of the whole emulated world: sshd pod + Runpod + Hub (goal: under 3 s).

Measured with the tiny models already cached (the first run ever builds them).
Run: python bench/world_startup.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, report


def start_world(root: Path) -> tuple[object, object, object]:
    from tests.fakes.hub import FakeHub
    from tests.fakes.runpod import FakeRunpod
    from tests.fakes.sshd import FakeSshd

    sshd = FakeSshd(root / "sshd").start()
    runpod = FakeRunpod(ssh_host=sshd.host, ssh_port=sshd.port, authorize_key=sshd.authorize)
    runpod.start()
    hub = FakeHub().start()
    return sshd, runpod, hub


def main() -> None:
    from tests.fakes.tiny import tiny_artifacts

    tiny_artifacts()  # build or load the cache outside the measurement
    samples = []
    for _ in range(5):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            sshd, runpod, hub = start_world(Path(tmp))
            samples.append(time.perf_counter() - started)
            for server in (hub, runpod, sshd):
                server.stop()  # type: ignore[attr-defined]
    report("emulated world startup, warm process (sshd + Runpod + Hub)", samples, goal=3.0)
    cold = []
    script = (
        "import sys, tempfile, pathlib; sys.path[:0] = ['bench', '.'];"
        "from world_startup import start_world;"
        "servers = start_world(pathlib.Path(tempfile.mkdtemp()));"
        "[s.stop() for s in reversed(servers)]"
    )
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
        cold.append(time.perf_counter() - started)
    report("emulated world startup, new process incl. imports and shutdown", cold, goal=3.0)


if __name__ == "__main__":
    main()
