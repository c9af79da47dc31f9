"""The command lines of one test's processes, among every process on this machine.

Why not all of them: the emulated pods run on this machine, and so do the other pytest-xdist
workers' pods, thinnka programs and sshds. A test that checks "no secret in any process's
arguments" must read its own processes (a check of everything else proves nothing about this
test and, with shared secrets, would fail for another test's doing), and must read all of
them: a pod's job is started with ``setsid nohup`` from an SSH session, so it leaves this
test's process tree and is found by its environment instead.

A process is the test's when any of these holds:
  * it descends from this pytest process (thinnka subprocesses, the worker's sshd and its
    sessions, the emulated containers);
  * its environment holds one of ``markers`` exactly (``RUNPOD_POD_ID=<id>`` of this test's
    pods, which Runpod puts in every process of a pod, and ``HOME=<the world's home>``,
    which every process thinnka starts inherits). Pod ids are random, homes are per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["process_arguments"]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # gone meanwhile, or not ours to read
        return None


def _parent(stat: bytes) -> int:
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after its ")".
    return int(stat.rsplit(b")", 1)[1].split()[1])


def process_arguments(markers: Iterable[str], root_pid: int | None = None) -> str:
    """Command lines (NULs as spaces), one a line, of the processes described above."""
    root = os.getpid() if root_pid is None else root_pid
    wanted = {marker.encode() for marker in markers}
    parents: dict[int, int] = {}
    lines: dict[int, str] = {}
    tagged: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat, cmdline = _read(entry / "stat"), _read(entry / "cmdline")
        if stat is None or cmdline is None:
            continue
        parents[pid] = _parent(stat)
        lines[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace")
        environ = _read(entry / "environ") or b""
        if wanted.intersection(environ.split(b"\0")):
            tagged.add(pid)
    found = []
    for pid, line in lines.items():
        seen, current = 0, pid
        while current not in (0, 1) and current != root and seen < 4096:
            current, seen = parents.get(current, 0), seen + 1
        if current == root or pid in tagged:
            found.append(line)
    return "\n".join(found)
