"""``process_arguments`` finds a test's processes, detached ones included, and no others."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.world.processes import process_arguments

# Starts `sleep` in a session of its own, prints its pid and exits: the sleep is left to
# init, out of this test's process tree, as a pod's `setsid nohup` job is.
_DETACH = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(['sleep', sys.argv[1]], start_new_session=True,\n"
    "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(p.pid, flush=True)\n"
    "os._exit(0)\n"
)


@pytest.fixture
def started() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def _detached(seconds: str, env: dict[str, str]) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _DETACH, seconds], env=env, capture_output=True, text=True,
        check=True, timeout=30,
    )  # fmt: skip
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/cmdline").read_bytes() == b"":  # until its exec shows
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return pid


def test_own_children_and_marked_detached_processes_are_found_others_are_not(
    started: list[int],
) -> None:
    marker = f"RUNPOD_POD_ID={uuid.uuid4().hex[:14]}"
    name, value = marker.split("=")
    child_s, ours_s, theirs_s = "1001.25", "1002.25", "1003.25"  # told apart by argument
    child = subprocess.Popen(["sleep", child_s])
    started.append(child.pid)
    started.append(_detached(ours_s, {**os.environ, name: value}))
    started.append(_detached(theirs_s, {**os.environ, name: "another-workers-pod"}))

    found = process_arguments([marker])
    assert f"sleep {child_s}" in found  # a descendant of this test
    assert f"sleep {ours_s}" in found  # detached, but carrying this test's pod id
    assert f"sleep {theirs_s}" not in found  # detached, another test's

    # Without the marker, the detached process of this test is not found either.
    assert f"sleep {ours_s}" not in process_arguments([])
