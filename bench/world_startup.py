"""Startup of the whole emulated world: sshd pod + Runpod + Hub (goal: under 3 s).

The world is ``_common.emulated_world``, the one the other benches run in. Measured with
the tiny models already cached (the first run ever builds them): in this process, and in
a new one, its imports and shutdown included (that process is started here by hand, since
its start is part of what is measured).
Run: python bench/world_startup.py
"""

from __future__ import annotations

import subprocess
import sys
import time

from _common import ROOT, emulated_world, report

_NEW_PROCESS = """
import sys
sys.path[:0] = ["bench", "."]
from _common import emulated_world
with emulated_world():
    pass
"""


def main() -> None:
    from tests.world.tiny import tiny_artifacts

    tiny_artifacts()  # build or load the cache outside the measurement
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        with emulated_world():
            samples.append(time.perf_counter() - started)  # up: sshd, Runpod and Hub answer
    report("emulated world startup, warm process (sshd + Runpod + Hub)", samples, goal=3.0)
    cold = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", _NEW_PROCESS], check=True, cwd=ROOT)
        cold.append(time.perf_counter() - started)
    report("emulated world startup, new process incl. imports and shutdown", cold, goal=3.0)


if __name__ == "__main__":
    main()
