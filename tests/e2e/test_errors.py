"""Clear errors instead of tracebacks (issue 21): the real program against the emulated world.

Each case breaks something a user's machine really breaks (a .env saved by Notepad, a
state folder on a read-only mount, a report written to a folder, a failing ``--json``
command) and runs the real ``thinnka`` as a process: one line naming what is wrong, the
documented exit code, and nothing created.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.plugins.thinnka_world import World

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _one_clear_line(result: subprocess.CompletedProcess[str], code: int, *said: str) -> None:
    returncode, err = result.returncode, result.stderr
    assert returncode == code, (returncode, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, err[-2000:]
    for text in said:
        assert text in errors[0], errors[0]


# ------------------------------------------------------------------ item 8: the .env's encoding
def test_a_utf16_env_file_from_notepad_is_read_as_utf16(world: World) -> None:
    env = world.workdir / ".env"
    env.write_bytes(env.read_text().encode("utf-16"))  # with its BOM, as Notepad saves it
    doctor = world.thinnka("doctor", "--json")
    assert "Traceback" not in doctor.stderr, doctor.stderr[-3000:]
    checks = {check["name"]: check for check in json.loads(doctor.stdout)}
    # Both keys were read from the UTF-16 file, or these services would not say ok.
    assert checks["runpod"]["status"] == checks["huggingface"]["status"] == "ok", checks
    assert checks["env file"]["status"] == "ok", checks["env file"]
    listed = world.thinnka("ls", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


@pytest.mark.parametrize(
    ("bad", "line"),
    [(b"# caf\xe9 au lait\n", 3), (b"K\x00E\x00Y\x00=\x001\x00\n", 2)],
    ids=["latin1-byte-in-a-comment", "utf16-without-a-bom"],
)
def test_an_env_file_that_is_not_utf8_is_named_with_its_line_and_exit_2(
    world: World, bad: bytes, line: int
) -> None:
    env = world.workdir / ".env"
    lines = env.read_bytes().splitlines(keepends=True)
    env.write_bytes(b"".join([*lines[: line - 1], bad, *lines[line - 1 :]]))
    started = time.monotonic()
    for command in (["doctor"], ["ls"], ["gpus", "--json"], ["show", "r-nothing"],
                    ["run", "--repo-id", world.hub.models.chat, "--sft"]):  # fmt: skip
        result = world.thinnka(*command)
        _one_clear_line(result, 2, f"{env}: line {line}", "UTF-8")
        for secret in world.secrets:
            assert secret not in result.stderr + result.stdout
    assert time.monotonic() - started < 60
    assert not (world.workdir / "state").exists(), "something was created"
    assert world.runpod.ledger() == []
