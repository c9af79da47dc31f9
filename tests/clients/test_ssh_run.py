"""``PodShell.run`` on its own channel and ``make_dirs``' requests, against a real OpenSSH sshd."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.world.sshd import FakeSshd
from thinnka.clients.ssh import PodShell, SshTarget, connect
from thinnka.errors import RemoteError, StepTimeout, TransientError

pytestmark = pytest.mark.timeout(90)

_MIB = 1 << 20


@pytest.fixture
def shell(sshd_pod: FakeSshd) -> Iterator[PodShell]:
    target = SshTarget(sshd_pod.host, sshd_pod.port, sshd_pod.user, sshd_pod.private_key_path)
    opened = connect(target, deadline=time.monotonic() + 20)
    try:
        yield opened
    finally:
        opened.close()


def test_megabytes_on_stderr_before_stdout_are_both_read(shell: PodShell) -> None:
    # Both streams share the channel's window (2 MiB): a reader that took stdout first and
    # stderr after would wait for good while the command waits for the window to reopen.
    script = (
        f"head -c {3 * _MIB} /dev/zero | tr '\\0' e >&2; "
        f"head -c {3 * _MIB} /dev/zero | tr '\\0' o; exit 4"
    )
    result = shell.run(script, timeout=30)
    assert result.exit_code == 4
    assert result.stdout == "o" * 3 * _MIB
    assert result.stderr == "e" * 3 * _MIB


def test_interleaved_output_of_both_streams_is_kept_whole(shell: PodShell) -> None:
    result = shell.run("for i in $(seq 2000); do echo out$i; echo err$i >&2; done", timeout=30)
    assert result.stdout.splitlines() == [f"out{i}" for i in range(1, 2001)]
    assert result.stderr.splitlines() == [f"err{i}" for i in range(1, 2001)]


def test_a_command_past_its_timeout_is_a_step_timeout_and_the_shell_goes_on(
    shell: PodShell,
) -> None:
    started = time.monotonic()
    with pytest.raises(StepTimeout, match=r"ran past 0\.5 s"):
        shell.run("echo begun; sleep 30", timeout=0.5)
    assert time.monotonic() - started < 5
    assert shell.run("echo next").stdout == "next\n"  # the connection stays open


def test_a_command_reading_stdin_sees_its_end(shell: PodShell) -> None:
    # Before: stdin stayed open, so `cat` (or a prompt) waited out the whole timeout.
    started = time.monotonic()
    result = shell.run("cat; echo read-all", timeout=10)
    assert (result.exit_code, result.stdout) == (0, "read-all\n")
    assert time.monotonic() - started < 5


def test_undecodable_bytes_do_not_fail_the_command(shell: PodShell) -> None:
    result = shell.run("printf 'a\\377b'")
    assert result.stdout == "a\ufffdb"


def _cut(shell: PodShell) -> None:
    sock = shell._connection.transport.sock
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def test_after_a_drop_the_next_command_reconnects_with_the_same_socket_options(
    shell: PodShell,
) -> None:
    threading.Timer(0.3, _cut, [shell]).start()
    with pytest.raises(TransientError, match="dropped"):
        shell.run("sleep 5", timeout=15)
    assert shell.run("echo again").stdout == "again\n"
    # Before: the reconnected socket kept Nagle's delay (~40 ms on each small packet).
    sock = shell._connection.transport.sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


class _Requests:
    """The SFTP requests the shell sends (each one a round trip to the pod)."""

    def __init__(self, shell: PodShell, monkeypatch: pytest.MonkeyPatch) -> None:
        from paramiko.sftp import CMD_NAMES

        self.sent: list[str] = []
        sftp = shell.sftp()
        request = sftp._request

        def counted(kind: int, *args: object) -> object:
            self.sent.append(CMD_NAMES[kind])
            return request(kind, *args)

        monkeypatch.setattr(sftp, "_request", counted)

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


def test_make_dirs_asks_once_for_a_folder_that_exists(
    shell: PodShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    requests = _Requests(shell, monkeypatch)
    shell.make_dirs(str(deep))
    # Before: a stat of every component from the root (here about ten).
    assert requests.take() == ["stat"]


def test_make_dirs_makes_only_the_missing_folders(
    shell: PodShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = _Requests(shell, monkeypatch)
    shell.make_dirs(str(tmp_path / "one"))
    assert requests.take() == ["stat", "mkdir"]
    shell.make_dirs(str(tmp_path / "x" / "y" / "z") + "/")
    assert requests.take() == ["stat", "mkdir", "mkdir", "mkdir", "mkdir", "mkdir"]
    assert (tmp_path / "x" / "y" / "z").is_dir() and (tmp_path / "one").is_dir()


def test_make_dirs_refuses_a_file_in_the_way(shell: PodShell, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(RemoteError, match="Could not create"):
        shell.make_dirs(str(tmp_path / "file"))
    with pytest.raises(RemoteError, match="Could not create"):
        shell.make_dirs(str(tmp_path / "file" / "below"))


def test_make_dirs_of_a_relative_path_is_under_the_login_folder(shell: PodShell) -> None:
    home = Path(shell.run("pwd").stdout.strip())
    name = f"thinnka-test-{time.time_ns()}"
    try:
        shell.make_dirs(f"{name}/inner")
        assert (home / name / "inner").is_dir()
    finally:
        for folder in (home / name / "inner", home / name):
            if folder.is_dir():
                folder.rmdir()


def test_the_hash_of_a_missing_file_starts_no_command(
    shell: PodShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    present = tmp_path / "data.jsonl"
    present.write_text('{"a": 1}\n')
    expected = hashlib.sha256(present.read_bytes()).hexdigest()
    assert shell.sha256_of(str(present)) == expected
    commands: list[str] = []
    monkeypatch.setattr(shell, "run", lambda script, **_: commands.append(script))
    # Before: a sha256sum on the pod for every file of a first upload (a process each).
    assert shell.sha256_of(str(tmp_path / "missing.jsonl")) is None
    assert commands == []
