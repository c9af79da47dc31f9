"""Clear errors instead of tracebacks (issue 21): the real program against the emulated world.

Each case breaks something a user's machine really breaks (a .env saved by Notepad, a
state folder on a read-only mount, a report written to a folder, a failing ``--json``
command) and runs the real ``thinnka`` as a process: one line naming what is wrong, the
documented exit code, and nothing created.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


# ------------------------------------------------------------------ item 9: the state folder
READ_ONLY_COMMANDS = ("ls", "show", "logs", "report", "plan", "gpus", "doctor")


def _unprivileged() -> list[str]:
    """root writes through any file mode: without CAP_DAC_OVERRIDE it is held to the modes,
    so a folder made 0555 is as read-only to it as a read-only mount is to everyone."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv cannot be kept out of a read-only folder")
    return ["setpriv", "--bounding-set=-dac_override"]


def _thinnka_as(world: World, prefix: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *world.command(*args)], cwd=world.workdir, env=world.env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    paths = [folder, *folder.rglob("*")]
    modes = {path: path.stat().st_mode for path in paths}
    for path in reversed(paths):  # the files first, then their folders
        path.chmod(modes[path] & ~0o222)
    try:
        yield
    finally:
        for path in paths:
            path.chmod(modes[path])


def test_a_read_only_state_folder_serves_reading_commands_and_refuses_writing_ones(
    world: World, tmp_path: Path
) -> None:
    prefix = _unprivileged()
    refused = world.thinnka("run", "--repo-id", world.hub.models.gated_denied, "--sft")
    assert refused.returncode == 1, refused.stderr[-2000:]  # one run row, no pod
    run_id = refused.stdout.split()[1]
    state = world.workdir / "state"
    log = state / "runs" / run_id / "remote.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("[setup] recorded before the mount went read-only\n")
    chat = world.hub.models.chat
    with _read_only(state):
        reading = {
            "ls": ["ls", "--all", "--json"],
            "show": ["show", run_id, "--json"],
            "logs": ["logs", run_id],
            "report": ["report", run_id, "--output", str(tmp_path / "report.html")],
            "plan": ["plan", "--json", "--repo-id", chat, "--sft"],
            "gpus": ["gpus", "--json"],
            "doctor": ["doctor", "--json"],
        }
        assert set(reading) == set(READ_ONLY_COMMANDS)
        results = {name: _thinnka_as(world, prefix, *args) for name, args in reading.items()}
        for name, result in results.items():
            assert result.returncode == 0, (name, result.stderr[-2000:])
            assert "Traceback" not in result.stderr, (name, result.stderr[-3000:])
        assert [row["id"] for row in json.loads(results["ls"].stdout)] == [run_id]
        assert json.loads(results["show"].stdout)["error"]["reason"] == "precheck"
        assert "recorded before the mount went read-only" in results["logs"].stdout
        assert (tmp_path / "report.html").read_text().count(run_id) >= 1
        database = {c["name"]: c for c in json.loads(results["doctor"].stdout)}["database"]
        assert database["status"] == "warn" and "read-only" in database["detail"], database
        for args in (["run", "--repo-id", chat, "--sft"], ["resume", run_id], ["cancel", run_id],
                     ["recover"], ["reap"]):  # fmt: skip
            result = _thinnka_as(world, prefix, *args)
            _one_clear_line(result, 2, str(state), "not writable")
    assert world.runpod.ledger() == []
    listed = world.thinnka("ls", "--all", "--json")
    assert [row["id"] for row in json.loads(listed.stdout)] == [run_id]  # nothing was added


def test_a_state_folder_under_a_file_is_one_clear_error_for_every_command(world: World) -> None:
    blocker = world.workdir / "not-a-folder"
    blocker.write_text("a file where the state folder's parent should be\n")
    world.write_dotenv(THINNKA_STATE_DIR=str(blocker / "state"))
    chat = world.hub.models.chat
    for args in (["ls"], ["show", "r-nothing"], ["logs", "r-nothing"], ["report", "r-nothing"],
                 ["doctor"], ["gpus", "--json"], ["plan", "--repo-id", chat, "--sft"],
                 ["run", "--repo-id", chat, "--sft"], ["resume", "r-nothing"],
                 ["cancel", "r-nothing"], ["recover"], ["reap"]):  # fmt: skip
        result = world.thinnka(*args)
        _one_clear_line(result, 2, str(blocker / "state"))
    assert world.runpod.ledger() == []


# ------------------------------------------------------------------ item 10: report's target
def test_report_into_a_folder_a_full_device_or_a_read_only_place(
    world: World, tmp_path: Path
) -> None:
    refused = world.thinnka("run", "--repo-id", world.hub.models.gated_denied, "--sft")
    run_id = refused.stdout.split()[1]
    folder = tmp_path / "reports"
    folder.mkdir()
    into = world.thinnka("report", run_id, "--output", str(folder))
    assert into.returncode == 0, into.stderr[-2000:]
    written = Path(into.stdout.strip())
    assert written.parent == folder and run_id in written.read_text()
    full = world.thinnka("report", run_id, "--output", "/dev/full")  # every write: ENOSPC
    _one_clear_line(full, 2, "/dev/full", "No space left on device")
    prefix = _unprivileged()
    with _read_only(world.workdir / "state"):  # the default place, state/runs/RUN/
        where = world.workdir / "state" / "runs" / run_id
        result = _thinnka_as(world, prefix, "report", run_id)
        _one_clear_line(result, 2, str(where), "--output")
    assert not list(where.glob("*.html*")), "a partial report was left behind"


# ------------------------------------------------------------------ item 11: --json errors
def _json_commands() -> set[str]:
    import typer

    from thinnka.cli import app

    group = typer.main.get_command(app)
    return {name for name, command in group.commands.items()  # type: ignore[attr-defined]
            if any("--json" in param.opts for param in command.params)}  # fmt: skip


def test_every_json_command_prints_a_json_error_object_when_it_fails(world: World) -> None:
    token = world.hub.tokens.write
    chat = world.hub.models.chat
    env = world.workdir / ".env"
    # command -> (how it is made to fail, its exit code, the reason code, a fault to set up)
    failures = {
        "plan": (["plan", "--json", "--repo-id", chat, "--sft", "--max-hours", "nan"], 2,
                 "invalid_config"),
        "show": (["show", token, "--json"], 2, "run_not_found"),  # a secret in the message
        "ls": (["ls", "--json"], 2, "invalid_config"),
        "gpus": (["gpus", "--json"], 1, "auth"),
        "recover": (["recover", "--json"], 1, "auth"),
        "doctor": (["doctor", "--json"], 2, "invalid_config"),
    }  # fmt: skip
    assert set(failures) == _json_commands(), "a --json command without its failure case"
    for name, (args, code, reason) in failures.items():
        saved = env.read_bytes()
        if name == "ls":  # the state folder cannot be made
            (world.workdir / "a-file").write_text("")
            world.write_dotenv(THINNKA_STATE_DIR=str(world.workdir / "a-file" / "state"))
        if name in ("gpus", "recover"):  # Runpod refuses the key from now on
            world.runpod.inject_faults(status=401, count=1000)
        if name == "doctor":  # a Latin-1 byte in the .env
            env.write_bytes(saved + b"# caf\xe9\n")
        try:
            result = world.thinnka(*args)
        finally:
            env.write_bytes(saved)
            world.runpod.clear_faults()
        assert result.returncode == code, (name, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, (name, result.stderr[-3000:])
        answer = json.loads(result.stdout)
        assert set(answer) == {"error"}, (name, answer)
        error = answer["error"]
        assert (error["code"], error["reason"]) == (code, reason), (name, error)
        assert error["message"] and "\n" not in error["message"], (name, error)
        stderr_line = next(line for line in result.stderr.splitlines() if "Error:" in line)
        assert error["message"] in stderr_line, (name, stderr_line)
        for secret in world.secrets:
            assert secret not in result.stdout + result.stderr, name
    usage = world.thinnka("show", "--json")  # typer's own usage error: no run id
    assert usage.returncode == 2
    assert json.loads(usage.stdout)["error"]["reason"] == "invalid_config"


# ------------------------------------------------------------------ item 12: dependency URLs
def test_a_credential_in_a_custom_dependency_url_goes_nowhere_and_rents_nothing(
    world: World,
) -> None:
    canary = "ghp_e2eCanaryDependencyToken0042"
    chat = world.hub.models.chat
    for item, said in ((f"pkg @ git+https://user:{canary}@git.example.org/org/pkg",
                        "must not carry a user name or password"),
                       ("pkg @ file:///home/me/pkg", "names a path on this machine")):  # fmt: skip
        for command in (["plan", "--json"], ["run", "--merge-model"]):
            result = world.thinnka(*command, "--repo-id", chat, "--sft",
                                   "--custom-dependencies", item)  # fmt: skip
            _one_clear_line(result, 2, said)
            if command[0] == "plan":
                assert said in json.loads(result.stdout)["error"]["message"]
            assert canary not in result.stdout + result.stderr
    state = world.workdir / "state"
    stored = [p.read_bytes() for p in state.rglob("*") if p.is_file()] if state.exists() else []
    assert not any(canary.encode() in data for data in stored)
    assert world.runpod.ledger() == []
    assert json.loads(world.thinnka("ls", "--all", "--json").stdout) == []
