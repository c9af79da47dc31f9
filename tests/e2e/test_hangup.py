"""A closed terminal (or a dropped SSH session) while ``thinnka run`` drives a run.

The real program runs with a real pty as its controlling terminal; the test closes the
terminal's master side, so the kernel sends SIGHUP and every later write to the terminal
fails, as when a person closes the window. Before training the run must be cancelled and
its pod terminated; during training thinnka detaches, as on Ctrl-C.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.plugins.thinnka_world import World
from tests.world.standin_trainer import (  # noqa: F401 - fixtures
    standin_run,
    standin_venv_fixture,
    standin_world_fixture,
    tell_standin,
)
from tests.world.terminal import Terminal, strip_ansi

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def wait_for(what: str, check: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _run_id(terminal: Terminal) -> str:
    match = re.search(r"\brun (r-[0-9a-z]+)", strip_ansi(terminal.text))
    assert match is not None, terminal.text[-2000:]
    return match.group(1)


def test_closing_the_terminal_while_the_pod_boots_cancels_the_run_and_terminates_its_pod(
    standin_world: World,
) -> None:
    world = standin_world
    world.runpod.set_boot_delay(5.0)  # the pod exists, its SSH does not yet
    terminal = Terminal(world.command(*standin_run(world)), cwd=world.workdir, env=world.env)
    try:
        wait_for("the pod", lambda: world.runpod.pods() != [], 120)
        wait_for("the run id", lambda: "run r-" in strip_ansi(terminal.text), 30)
        run_id = _run_id(terminal)
        terminal.hang_up()
        assert terminal.proc.wait(timeout=120) == 130  # cleaned up, then "interrupted"
    finally:
        terminal.close()
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "cancelled"), shown["error"]
    assert shown["error"]["reason"] == "cancelled"
    assert world.runpod.pods() == []
    (entry,) = world.runpod.ledger()
    assert entry.terminated_by == "rest"  # by thinnka itself, with the account's key


def test_closing_the_terminal_during_training_detaches_like_ctrl_c(standin_world: World) -> None:
    world = standin_world
    tell_standin(world, steps=100000, step_s=0.1)
    argv = world.command(*standin_run(world, "--watchdog-grace", "30"))
    terminal = Terminal(argv, cwd=world.workdir, env=world.env)
    try:
        wait_for("the run id", lambda: "run r-" in strip_ansi(terminal.text), 60)
        run_id = _run_id(terminal)
        wait_for("training", lambda: world.show(run_id)["state"] == "training", 240)
        terminal.hang_up()
        assert terminal.proc.wait(timeout=60) == 130
    finally:
        terminal.close()
    shown = world.show(run_id)
    assert shown["state"] == "training" and shown["lease_owner"] is None
    assert world.runpod.pod(shown["pod_id"]) is not None  # the training goes on
    cancelled = world.thinnka("cancel", run_id)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    shown = world.show(run_id)
    assert (shown["state"], shown["outcome"]) == ("terminated", "cancelled")
    assert world.runpod.pods() == []
