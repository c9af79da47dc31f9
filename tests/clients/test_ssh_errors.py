"""Every error of paramiko, invoke and the socket below becomes a thinnka error at the SSH client.

The classes are enumerated from the installed libraries; the real cases (a connection that
drops under a running shell) run against a real OpenSSH sshd.
"""

from __future__ import annotations

import inspect
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.world.sshd import FakeSshd
from thinnka.clients.ssh import PodShell, SshTarget, connect, translate_ssh_error
from thinnka.errors import (
    AuthError,
    ConfigError,
    RemoteError,
    StepTimeout,
    ThinnkaError,
    TransientError,
)

pytestmark = pytest.mark.timeout(60)


def _library_errors() -> list[type[BaseException]]:
    import invoke.exceptions
    import paramiko
    import paramiko.ssh_exception

    found: dict[type[BaseException], None] = {}
    for module in (paramiko, paramiko.ssh_exception, invoke.exceptions):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Exception) and value.__module__.split(".")[0] in (
                "paramiko",
                "invoke",
            ):
                found[value] = None
    stack = list(paramiko.SSHException.__subclasses__())
    while stack:
        sub = stack.pop()
        found.setdefault(sub, None)
        stack.extend(sub.__subclasses__())
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def _instance(cls: type[BaseException]) -> BaseException:
    import invoke

    if cls is invoke.CommandTimedOut:
        return invoke.CommandTimedOut(invoke.Result(command="sleep 9"), timeout=5)
    try:
        return cls("boom")
    except Exception:  # constructors with other shapes (hostnames, keys, results, ...)
        error = cls.__new__(cls)
        error.args = ("boom",)
        return error


LIBRARY_ERRORS = _library_errors()
EXPECTED: dict[str, type[ThinnkaError]] = {
    "SSHException": TransientError, "ChannelException": TransientError,
    "ProxyCommandFailure": TransientError, "NoValidConnectionsError": TransientError,
    "AuthenticationException": AuthError, "BadAuthenticationType": AuthError,
    "PasswordRequiredException": ConfigError, "BadHostKeyException": RemoteError,
    "SFTPError": RemoteError, "IncompatiblePeer": RemoteError,
    "CommandTimedOut": StepTimeout, "ThreadException": TransientError,
}  # fmt: skip


def test_the_enumeration_sees_the_hierarchies() -> None:
    names = {cls.__name__ for cls in LIBRARY_ERRORS}
    assert {"SSHException", "ChannelException", "BadHostKeyException", "SFTPError"} <= names
    assert {"CommandTimedOut", "ThreadException", "UnexpectedExit"} <= names


@pytest.mark.parametrize("cls", LIBRARY_ERRORS, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_library_error_becomes_a_thinnka_error(cls: type[BaseException]) -> None:
    translated = translate_ssh_error(_instance(cls), "Running a command on the pod")
    assert isinstance(translated, ThinnkaError)
    assert translated.reason and "\n" not in translated.message
    if cls.__name__ in EXPECTED:
        assert type(translated) is EXPECTED[cls.__name__], translated.message


@pytest.mark.parametrize(
    "error", [EOFError(), ConnectionResetError(), TimeoutError(), BrokenPipeError()]
)
def test_socket_errors_are_transient(error: BaseException) -> None:
    assert type(translate_ssh_error(error, "SSH")) is TransientError


def _target(sshd: FakeSshd) -> SshTarget:
    return SshTarget(sshd.host, sshd.port, sshd.user, sshd.private_key_path)


def _cut(shell: PodShell) -> None:
    """Drop the TCP connection under a live shell, as a NAT timeout or a dead pod does."""
    sock = shell._connection.transport.sock
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def shell(sshd_pod: FakeSshd) -> Iterator[PodShell]:
    opened = connect(_target(sshd_pod), deadline=time.monotonic() + 20)
    try:
        yield opened
    finally:
        opened.close()


def test_a_connection_dropped_under_run_is_not_a_command_result(shell: PodShell) -> None:
    # Before: paramiko's "no exit status" (-1) came back as if the command had failed.
    threading.Timer(0.3, _cut, [shell]).start()
    with pytest.raises(TransientError, match="dropped"):
        shell.run("sleep 5; echo done", timeout=15)


def test_a_command_killed_by_a_signal_is_still_its_own_result(shell: PodShell) -> None:
    assert shell.run("kill -KILL $$").exit_code == -1


def test_a_connection_dropped_under_stream_is_not_the_end_of_output(shell: PodShell) -> None:
    # Before: the stream simply ended, as if the command had exited.
    threading.Timer(0.3, _cut, [shell]).start()
    with pytest.raises(TransientError, match="dropped"):
        list(shell.stream("sleep 5; echo x", poll=0.1))
    assert list(shell.stream("echo y", poll=0.1)) != []  # reconnected: a fresh session works


def test_a_connection_dropped_under_sftp_is_a_transient_error(shell: PodShell) -> None:
    shell.sftp()
    _cut(shell)
    time.sleep(0.2)
    with pytest.raises(TransientError):
        shell.read_from("/etc/hostname", 0)
