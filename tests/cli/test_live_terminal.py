"""The live view on a real terminal: ``thinnka run`` on a pseudo-terminal, end to end.

The real program drives a run against the emulated world (the stand-in trainer prints
what transformers' Trainer prints: its tqdm bar and a logged dict per step). What the
pty's master side receives is replayed as a terminal would show it
(tests/world/terminal.py). The same command with stdout a pipe prints plain lines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from tests.plugins.thinnka_world import World
from tests.world.standin_trainer import (  # noqa: F401 - fixtures
    standin_run,
    standin_venv_fixture,
    standin_world_fixture,
    tell_standin,
)
from tests.world.terminal import run_on_pty, screen, strip_ansi

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def _terminal_env(world: World) -> dict[str, str]:
    """The world's environment as a person's terminal has it: the size comes from the pty."""
    drop = {"COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"}
    env = {k: v for k, v in world.env.items() if k not in drop}
    env["TERM"] = "xterm-256color"
    return env


def _status_rows(rows: list[str]) -> list[int]:
    return [n for n, row in enumerate(rows) if "so far" in row]


def _ended_cleanly(text: str) -> None:
    """The cursor is shown again, after a newline, and nothing follows."""
    assert HIDE_CURSOR in text  # the live view ran
    assert text.rfind(SHOW_CURSOR) > text.rfind(HIDE_CURSOR)
    assert text.endswith(SHOW_CURSOR), repr(text[-200:])
    assert strip_ansi(text).endswith("\n"), repr(text[-200:])


def test_run_on_a_terminal_shows_the_live_view_above_the_streamed_lines(
    standin_world: World,
) -> None:
    world = standin_world
    tell_standin(world, steps=6, step_s=0.3)
    rows_cols = (30, 120)
    argv = world.command(*standin_run(world, "--skip-setup"))
    result = run_on_pty(
        argv, cwd=world.workdir, env=_terminal_env(world), size=rows_cols, deadline_s=180
    )
    text = result.text
    assert result.returncode == 0, strip_ansi(text)[-3000:]
    _ended_cleanly(text)
    rows = screen(text, rows_cols[1])
    [run_id] = [row.split()[1] for row in rows if row.startswith("run r-")]
    shown = world.show(run_id)
    # Drawn while the run went: state, pod and GPU, cost so far, the trainer's step/total.
    plain = strip_ansi(text)
    assert f"{run_id}  training  pod {shown['pod_id']}  1× NVIDIA L40S" in plain
    assert re.search(r"elapsed \d\d:\d\d  \$\d+\.\d{4} so far", plain)
    assert re.search(r"train  \S+  [1-5]/6  ETA 00:0[1-5]  loss [0-9.]+", plain)
    # What stays on the screen: every streamed line and event once, in order, and one
    # status block at the bottom showing how the run ended (not its last training frame).
    loss_lines = [row for row in rows if row.startswith("[train] {'loss'")]
    assert len(loss_lines) == 6, rows
    assert rows.count("[train] stand-in trainer: training thinnka-tester/qwen2-chat-sft-thinnka")
    assert rows.index(f"run {run_id}") < rows.index(loss_lines[0])
    [ended] = [row for row in rows if f"Run {run_id} succeeded; pod cost $" in row]
    cost = ended.rsplit("$", 1)[1].rstrip(".")
    transitions = [row for row in rows if "] transition " in row]
    assert len(transitions) == 8, transitions  # the log lines scroll above the block too
    assert _status_rows(rows) == [len(rows) - 3], rows[-12:]
    head, bar = rows[-3], rows[-2]
    assert head.startswith(f"{run_id}  terminated  pod {shown['pod_id']}  1× NVIDIA L40S")
    assert head.endswith(f"${cost} so far"), head  # the recorded cost, as the event says
    assert bar.startswith("train  ") and bar.endswith("6/6  ETA 00:00  loss 0.3333"), bar
    assert rows[-1] == ""


def test_an_unsized_terminal_and_ctrl_c_during_training(standin_world: World) -> None:
    """A pty nobody sized (0x0) counts as 80 columns: the status line wraps, whole. Ctrl-C
    during training detaches (exit 130) with the view closed and the cursor back."""
    world = standin_world
    tell_standin(world, steps=60, step_s=0.25)
    argv = world.command(*standin_run(world, "--skip-setup"))

    interrupted: list[bool] = []

    def ctrl_c_at_step_2(received: bytes, proc: subprocess.Popen[bytes]) -> None:
        if not interrupted and re.search(rb" ([2-9]|\d\d)/60  ETA", received):
            interrupted.append(True)
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends the foreground group

    result = run_on_pty(
        argv, cwd=world.workdir, env=_terminal_env(world), size=None, deadline_s=180,
        on_output=ctrl_c_at_step_2,
    )  # fmt: skip
    text = result.text
    rows = screen(text, 80)
    [run_id] = [row.split()[1] for row in rows if row.startswith("run r-")]
    try:
        assert result.returncode == 130, strip_ansi(text)[-3000:]
        _ended_cleanly(text)
        assert any(f"thinnka logs -f {run_id}" in row for row in rows), rows[-10:]
        pod_id = world.show(run_id)["pod_id"]
        status = _status_rows(rows)
        assert len(status) == 1 and status[0] >= len(rows) - 5, rows[-12:]
        block = " ".join(rows[status[0] - 1 : status[0] + 1])
        assert re.search(rf"{run_id}\s+training\s+pod {pod_id}\s+1× NVIDIA\s+L40S", block), block
        assert all(len(row) <= 80 for row in rows[status[0] - 1 :])
        assert "/60  ETA" in rows[-2], rows[-3:]
    finally:  # the training goes on under its watchdog: stop it and its pod
        cancelled = world.thinnka("cancel", run_id, timeout=120)
    assert cancelled.returncode == 0, cancelled.stderr[-2000:]
    assert world.runpod.pods() == []


def test_the_same_command_piped_prints_plain_lines(standin_world: World) -> None:
    world = standin_world
    tell_standin(world, steps=6, step_s=0.05)
    result = world.thinnka(*standin_run(world, "--skip-setup"), timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\r" not in stream
    first, *lines = result.stdout.splitlines()
    assert re.fullmatch(r"run r-\w+", first)
    assert lines and all(re.match(r"\[(setup|train)\] ", line) for line in lines), lines
    assert sum(line.startswith("[train] {'loss'") for line in lines) == 6
    assert "[train] step 6/6" in result.stderr  # the plain form of the progress bar
