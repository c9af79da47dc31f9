"""SSH to the pod with fabric: connect until a deadline, pin the host key.

sshd often starts listening a little after Runpod publishes the port
mapping, so connecting retries (quickly at first, then backing off) until
the step's deadline. The pod's host key is recorded at the first connect and
every later connect refuses a different one. Keepalives keep long reads of a
training log from dying behind NAT.

fabric holds the connection (reconnecting after a drop) and SFTP; commands run on a
paramiko channel of its transport, read in the caller's thread, not through fabric's
runner (invoke's reader threads and their polling cost ~0.1 s a command).

Every exception of paramiko, invoke (fabric's) and the socket below is
translated here (rules in ``ssh_errors``): a refused key is an ``AuthError``, a
dropped connection or a broken channel a ``TransientError``, a remote command
past its timeout a ``StepTimeout``.
"""

from __future__ import annotations

import base64
import posixpath
import shlex
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinnka.clients.ssh_errors import ssh_errors, translate_ssh_error
from thinnka.errors import RemoteError, StepTimeout, TransientError

__all__ = ["CommandResult", "SshTarget", "connect", "load_ssh_client", "translate_ssh_error"]


def load_ssh_client() -> None:
    """Import fabric (and paramiko under it): a fifth of a second, better spent while
    the pod boots than after its port shows (``connect`` imports it anyway)."""
    import fabric  # noqa: F401


def _bash(script: str) -> str:
    """The command line that runs ``script`` under bash on the pod.

    The login shell sshd starts has read ``~/.bashrc`` already (bash does that for
    commands over SSH); ``--norc`` keeps this second bash from reading it again, which on
    an image whose bashrc initialises pyenv or conda costs a fifth of a second a command.
    What the first one exported is inherited all the same.
    """
    return f"bash --norc -c {shlex.quote(script)}"


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    key_path: Path
    pinned_host_key: str | None = None  # "ssh-ed25519 AAAA..." once known


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class _PinningPolicy:
    """Accept the first host key (remembering it) or only the pinned one."""

    def __init__(self, pinned: str | None) -> None:
        self.pinned = pinned
        self.seen: str | None = None

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        offered = f"{key.get_name()} {key.get_base64()}"
        if self.pinned is not None and offered != self.pinned:
            raise RemoteError(
                f"Host key of {hostname} changed since the first connect; refusing.",
                reason="host_key_changed",
            )
        self.seen = offered


_CHUNK = 1 << 16


def _read_to_exit(channel: Any, deadline: float) -> tuple[int, bytes, bytes] | None:
    """The exit status, stdout and stderr of the command on ``channel``; None when
    ``deadline`` passes first.

    Both streams are read as they come: they share the channel's window, which only
    reading reopens, so a command writing megabytes to stderr before its stdout would
    otherwise block for good. ``fileno`` is a pipe paramiko makes readable while either
    stream holds data and once the channel ends (EOF, or closed with the connection).
    """
    import select

    stdout, stderr = bytearray(), bytearray()
    ready = channel.fileno()
    while True:
        ended = channel.eof_received or channel.closed  # before reading: no byte left behind
        while channel.recv_ready():
            stdout += channel.recv(_CHUNK)
        while channel.recv_stderr_ready():
            stderr += channel.recv_stderr(_CHUNK)
        if ended:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        select.select([ready], [], [], remaining)
    # sshd sends the exit status beside the end of output; a closed channel has none (-1).
    if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
        return None
    return channel.exit_status, bytes(stdout), bytes(stderr)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _tune(transport: Any) -> None:
    """Keepalives (a long read must not die behind NAT) and no Nagle delay (many small
    request/response packets: it would add ~40 ms to each)."""
    transport.set_keepalive(15)
    transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PodShell:
    """An open SSH session to the pod."""

    def __init__(self, connection: Any, host_key: str) -> None:
        self._connection = connection
        self.host_key = host_key
        self._sftp: Any = None

    def is_active(self) -> bool:
        transport = self._connection.transport
        return transport is not None and transport.is_active()

    def close(self) -> None:
        try:
            if self._sftp is not None:
                self._sftp.close()
        finally:
            self._connection.close()

    def __enter__(self) -> PodShell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _session(self, what: str) -> Any:
        """A new channel on the connection, reconnecting first after a drop."""
        with ssh_errors(what):
            transport = self._connection.transport
            self._connection.open()  # a no-op while connected
            if self._connection.transport is not transport:  # reconnected: a new socket
                _tune(self._connection.transport)
            return self._connection.transport.open_session()

    def run(self, script: str, *, timeout: float = 600.0) -> CommandResult:
        """Run a bash script on the pod; never raises for a non-zero exit.

        One channel, read in this thread (fabric's runner would start reader threads
        and poll them: ~100 ms a command). A command past ``timeout`` has its channel
        closed and raises ``StepTimeout``; the connection stays open for the next one.
        """
        what = "Running a command on the pod"
        channel = self._session(what)
        try:
            with ssh_errors(what):
                channel.exec_command(_bash(script))
                channel.shutdown_write()  # no input: a command reading stdin sees its end
                finished = _read_to_exit(channel, time.monotonic() + timeout)
        finally:
            channel.close()
        if finished is None:
            raise StepTimeout(f"{what}: the remote command ran past {timeout:g} s.")
        exit_code, stdout, stderr = finished
        # paramiko reports -1 when no exit status came: the command died by a signal, or
        # the connection dropped under it. Only the first is the command's own result.
        if exit_code == -1 and not self.is_active():
            raise TransientError(f"{what}: the SSH connection dropped before it finished.")
        return CommandResult(exit_code, _text(stdout), _text(stderr))

    def stream(self, script: str, *, poll: float = 1.0) -> Iterator[bytes | None]:
        """Run a bash script and yield its stdout as it comes.

        Yields None after ``poll`` seconds without output, so the caller can
        check deadlines and cancellation; ends when the command exits.
        """
        what = "Streaming from the pod"
        channel = self._session(what)  # reconnects after a drop, as ``run`` does
        transport = channel.get_transport()
        try:
            with ssh_errors(what):
                channel.settimeout(poll)
                channel.exec_command(_bash(script))
            while True:
                try:
                    data = channel.recv(1 << 16)
                except TimeoutError:  # nothing within ``poll``
                    yield None
                    continue
                except Exception as exc:
                    raise translate_ssh_error(exc, what) from exc
                if not data:  # end of output: the command exited, or the connection dropped
                    if not transport.is_active():
                        raise TransientError(f"{what}: the SSH connection to the pod dropped.")
                    return
                yield data
        finally:
            channel.close()

    def sftp(self) -> Any:
        if self._sftp is None:
            with ssh_errors("Opening SFTP to the pod"):
                self._sftp = self._connection.sftp()
        return self._sftp

    def make_dirs(self, *paths: str) -> None:
        """``mkdir -p`` over SFTP (no new process on the pod).

        Each request is a round trip to the pod: a folder that exists costs one ``stat``;
        a missing one a ``mkdir``, and its missing parents one more each (never a request
        for each parent that exists, as a walk from the root would).
        """
        for path in paths:
            if not self._is_dir(path):
                self._make_path(path.rstrip("/") or path)

    def _is_dir(self, path: str) -> bool:
        try:
            attributes = self.sftp().stat(path)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise translate_ssh_error(exc, f"Creating {path} on the pod") from exc
        return stat.S_ISDIR(attributes.st_mode or 0)

    def _make_path(self, path: str, *, parents: bool = True) -> None:
        """``mkdir path``, making its missing parents first when the pod says they are."""
        sftp = self.sftp()
        try:
            sftp.mkdir(path)
            return
        except FileNotFoundError:  # a parent is missing too
            parent = posixpath.dirname(path)
            if not parents or parent in ("", "/", path):
                raise RemoteError(f"Could not create {path} on the pod (no such folder).") from None
        except OSError as exc:  # permission, a file in the way, or made meanwhile
            if self._is_dir(path):
                return
            raise RemoteError(f"Could not create {path} on the pod ({exc}).") from exc
        except Exception as exc:
            raise translate_ssh_error(exc, f"Creating {path} on the pod") from exc
        self._make_path(parent)
        self._make_path(path, parents=False)

    def put_text(self, path: str, text: str, *, mode: int = 0o644) -> None:
        """Write a file on the pod; a secret file is created 0600 before any byte lands."""
        sftp = self.sftp()
        temporary = f"{path}.tmp-{int(time.time() * 1000)}"
        with ssh_errors(f"Writing {path} on the pod"):
            with sftp.open(temporary, "w") as handle:
                handle.chmod(mode)
                handle.write(text.encode("utf-8"))
            sftp.posix_rename(temporary, path)

    def put_file(self, local: str, path: str, *, mode: int = 0o644) -> None:
        """Copy a local file to the pod over SFTP; it appears whole or not at all."""
        sftp = self.sftp()
        temporary = f"{path}.tmp-{int(time.time() * 1000)}"
        with ssh_errors(f"Uploading {path} to the pod"):
            sftp.put(local, temporary, confirm=True)
            sftp.chmod(temporary, mode)
            sftp.posix_rename(temporary, path)

    def sha256_of(self, path: str) -> str | None:
        """The sha256 of a file on the pod (``sha256sum``, coreutils), None when absent.

        Whether it exists is asked over SFTP first: an upload to a new pod (the usual
        case) starts no process there for a file it does not hold.
        """
        try:
            self.sftp().stat(path)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise translate_ssh_error(exc, f"Reading {path} on the pod") from exc
        result = self.run(f"sha256sum -- {shlex.quote(path)} 2>/dev/null", timeout=600.0)
        found = result.stdout.split()
        return found[0] if result.ok and found else None

    def read_from(self, path: str, offset: int, limit: int = 1 << 20) -> bytes:
        """Bytes of ``path`` from ``offset`` (empty when it does not exist yet)."""
        sftp = self.sftp()
        try:
            with sftp.open(path, "rb") as handle:
                handle.seek(offset)
                return bytes(handle.read(limit))
        except FileNotFoundError:
            return b""
        except Exception as exc:
            raise translate_ssh_error(exc, f"Reading {path} on the pod") from exc


def connect(target: SshTarget, *, deadline: float, first_delay: float = 0.25) -> PodShell:
    """Open SSH to the pod, retrying refused or reset connections until ``deadline``."""
    from fabric import Connection

    what = f"SSH to {target.host}:{target.port}"
    delay = first_delay
    last_error = "no attempt"
    while True:
        policy = _PinningPolicy(target.pinned_host_key)
        connection = Connection(
            host=target.host,
            port=target.port,
            user=target.user,
            connect_timeout=max(1.0, min(15.0, deadline - time.monotonic())),
            connect_kwargs={
                "key_filename": str(target.key_path),
                "look_for_keys": False,
                "allow_agent": False,
                "banner_timeout": 15,
                "auth_timeout": 15,
            },
        )
        # No known_hosts file: the run record is the only source of the pod's key.
        connection.client.set_missing_host_key_policy(policy)
        try:
            connection.open()
            _tune(connection.transport)
            host_key = policy.seen or _host_key_of(connection)
            policy.pinned = host_key  # fabric reconnects on its own: only to this key
            return PodShell(connection, host_key)
        except Exception as exc:
            connection.close()
            error = translate_ssh_error(exc, what)
            if not isinstance(error, TransientError):  # refused key, changed host key, ...
                raise error from (None if error is exc else exc)
            # Refused, reset or half-open: sshd may not listen yet; retried until the deadline.
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + delay > deadline:
            raise StepTimeout(
                f"{what} did not open before the deadline (last error: {last_error})."
            )
        time.sleep(delay)
        delay = min(delay * 1.6, 5.0)


def _host_key_of(connection: Any) -> str:
    key = connection.transport.get_remote_server_key()
    return f"{key.get_name()} {base64.b64encode(key.asbytes()).decode()}"
