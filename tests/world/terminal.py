"""A real pseudo-terminal for a command, and the screen a terminal would show for its bytes.

``run_on_pty`` starts a command with stdin, stdout and stderr on the slave side of a new
pty (so ``isatty()`` is true, as in a person's terminal) and reads everything the master
side receives, each read bounded by one overall deadline. ``screen`` replays those bytes
the way a VT100-style terminal does (carriage return, line feed, auto-wrap at the width,
erase line, cursor up; colours ignored) and returns every row, scrollback included, so a
test can see what the person saw: a status block drawn once at the bottom, or the same
block smeared over the scrollback when something wrote past it.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PtyResult", "Terminal", "run_on_pty", "screen", "strip_ansi"]

_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
_OTHER_ESCAPE = re.compile(r"\x1b[()][A-Za-z0-9]|\x1b[=>78]")


@dataclass(frozen=True)
class PtyResult:
    returncode: int
    output: bytes

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", errors="replace")


def run_on_pty(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    size: tuple[int, int] | None,
    deadline_s: float,
    on_output: Callable[[bytes, subprocess.Popen[bytes]], None] | None = None,
) -> PtyResult:
    """Run ``argv`` on a new pty of ``size`` (rows, columns; None leaves it 0x0, as a pty
    nobody sized is); ``on_output(all_bytes_so_far, process)`` after every read."""
    master, slave = os.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    try:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True,  # its own process group: "Ctrl-C" is killpg(SIGINT)
        )  # fmt: skip
    finally:
        os.close(slave)
    received = bytearray()
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{argv[:4]} still running after {deadline_s} s")
            ready, _, _ = select.select([master], [], [], min(left, 0.5))
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the slave side has closed it
                break
            if not chunk:
                break
            received += chunk
            if on_output is not None:
                on_output(bytes(received), proc)
        returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return PtyResult(returncode, bytes(received))


class Terminal:
    """A command whose controlling terminal is a new pty, as in a person's terminal window.

    ``hang_up()`` closes the terminal (the master side), as closing the window or losing
    the SSH session does: the kernel sends SIGHUP to the command (the session leader of its
    terminal), and its writes to the terminal fail from then on (EIO). Until then a thread
    reads what the command writes, so it never blocks on a full pty buffer.
    """

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str]) -> None:
        self._master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        try:
            self.proc = subprocess.Popen(
                list(argv), cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True,
                # After setsid: the pty becomes the session's controlling terminal.
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            )  # fmt: skip
        finally:
            os.close(slave)
        self.output = bytearray()
        self._open = True
        self._reader = threading.Thread(target=self._read, name="terminal", daemon=True)
        self._reader.start()

    @property
    def text(self) -> str:
        return bytes(self.output).decode("utf-8", errors="replace")

    def _read(self) -> None:
        while self._open:
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready or not self._open:
                continue
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the command closed its side
                return
            if not chunk:
                return
            self.output += chunk

    def hang_up(self) -> None:
        """Close the terminal: SIGHUP for the command, EIO for its writes."""
        if self._open:
            self._open = False
            self._reader.join(timeout=5)
            os.close(self._master)

    def close(self) -> None:
        self.hang_up()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def strip_ansi(text: str) -> str:
    return _OTHER_ESCAPE.sub("", _CSI.sub("", text))


def screen(text: str, columns: int) -> list[str]:
    """Every row a terminal ``columns`` wide shows for ``text`` (scrollback included)."""
    rows: list[list[str]] = [[]]
    row = col = 0
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\x1b":
            match = _CSI.match(text, position)
            if match is None:
                other = _OTHER_ESCAPE.match(text, position)
                position = other.end() if other is not None else position + 1
                continue
            params, final = match.groups()
            if final == "K":  # erase the line (2K: all of it; what rich sends)
                rows[row] = [] if params in ("2", "") else rows[row][:col]
            elif final == "A":
                row = max(0, row - int(params or "1"))
            elif final == "G":
                col = max(0, int(params or "1") - 1)
            position = match.end()
            continue
        position += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
        elif char >= " " or char == "\t":
            if col >= columns:  # auto-wrap: the character goes to the next row
                row, col = row + 1, 0
            while len(rows) <= row:
                rows.append([])
            line = rows[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1
        while len(rows) <= row:
            rows.append([])
    return ["".join(line).rstrip() for line in rows]
