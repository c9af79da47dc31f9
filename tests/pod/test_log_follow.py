"""Following a job's log across a kill: the terminal never misses a line.

The kill is played by a ``record`` that dies the moment the offset is saved, the
one instant no live server can pick: whatever the chunk held must already have
been shown, and the local copy must be cut back to the recorded size on re-attach.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from thinnka.pod.jobs import _align_local_copy, _Follower
from thinnka.store.records import LogPosition, RemoteFacts


class Killed(BaseException):
    """The process dying (a BaseException: nothing in the follower may catch it)."""


class Screen:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, stage: str, text: str) -> None:
        self.lines.append(f"[{stage}] {text}")

    def progress(self, stage: str, done: int, total: int, text: str) -> None:
        pass

    def event(self, name: str, message: str, **fields: Any) -> None:
        pass


def _follower(tmp_path: Path, screen: Screen, *, die_on_save: bool) -> tuple[_Follower, Any]:
    saved: list[LogPosition] = []

    def save(**facts: Any) -> None:
        if die_on_save:
            raise Killed
        ctx.run.remote = facts["remote"]
        saved.append(facts["remote"].logs["train"])

    ctx = SimpleNamespace(run=SimpleNamespace(remote=RemoteFacts()), save=save, output=screen)
    local = tmp_path / "remote.log"
    _align_local_copy(local, None)
    return _Follower(ctx, "train", "train", local, LogPosition()), saved  # type: ignore[arg-type]


def test_a_kill_while_saving_the_offset_loses_no_line_on_the_terminal(tmp_path: Path) -> None:
    screen = Screen()
    follower, _ = _follower(tmp_path, screen, die_on_save=True)
    with pytest.raises(Killed):
        follower.feed(b"scoring the base model\nstep 1\npartial", final=False)
    assert screen.lines == ["[train] scoring the base model", "[train] step 1"]


def test_resume_after_such_a_kill_shows_the_chunk_again_and_keeps_one_local_copy(
    tmp_path: Path,
) -> None:
    screen = Screen()
    first, saved = _follower(tmp_path, screen, die_on_save=False)
    first.feed(b"one\n", final=False)
    first.ctx.save = lambda **facts: (_ for _ in ()).throw(Killed())  # type: ignore[attr-defined]
    with pytest.raises(Killed):
        first.feed(b"two\n", final=False)
    recorded = saved[-1]
    assert recorded.offset == len(b"one\n")

    # Re-attach: the local copy is cut back to the recorded size, the log read again
    # from the recorded offset.
    _align_local_copy(first.local, recorded.local)
    again = _Follower(first.ctx, "train", "train", first.local, recorded)
    again.ctx.save = lambda **facts: None  # type: ignore[attr-defined]
    again.feed(b"two\nthree\n", final=True)
    assert screen.lines == ["[train] one", "[train] two", "[train] two", "[train] three"]
    assert first.local.read_text().splitlines() == ["[train] one", "[train] two", "[train] three"]
