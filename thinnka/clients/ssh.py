"""SSH to the pod with fabric: connect until a deadline, pin the host key.

sshd often starts listening a little after Runpod publishes the port
mapping, so connecting retries (quickly at first, then backing off) until
the step's deadline. The pod's host key is recorded at the first connect and
every later connect refuses a different one. Keepalives keep long reads of a
training log from dying behind NAT.
"""

from __future__ import annotations

import base64
import shlex
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinnka.errors import AuthError, RemoteError, StepTimeout, TransientError

__all__ = ["CommandResult", "SshTarget", "connect"]


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
            import paramiko

            raise paramiko.SSHException(
                f"Host key of {hostname} changed since the first connect; refusing."
            )
        self.seen = offered


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

    def run(self, script: str, *, timeout: float = 600.0) -> CommandResult:
        """Run a bash script on the pod; never raises for a non-zero exit."""
        import invoke

        try:
            result = self._connection.run(
                f"bash -c {shlex.quote(script)}",
                hide=True,
                warn=True,
                in_stream=False,
                timeout=timeout,
            )
        except invoke.CommandTimedOut:
            raise StepTimeout(f"Remote command ran past {timeout:.0f} s.") from None
        except (OSError, EOFError) as exc:
            raise TransientError(
                f"SSH connection to the pod broke ({type(exc).__name__})."
            ) from exc
        return CommandResult(result.exited, result.stdout, result.stderr)

    def stream(self, script: str, *, poll: float = 1.0) -> Iterator[bytes | None]:
        """Run a bash script and yield its stdout as it comes.

        Yields None after ``poll`` seconds without output, so the caller can
        check deadlines and cancellation; ends when the command exits.
        """
        channel = self._connection.client.get_transport().open_session()
        try:
            channel.settimeout(poll)
            channel.exec_command(f"bash -c {shlex.quote(script)}")
            while True:
                try:
                    data = channel.recv(1 << 16)
                except TimeoutError:
                    yield None
                    continue
                if not data:
                    return
                yield data
        except (OSError, EOFError) as exc:
            raise TransientError(f"SSH stream from the pod broke ({type(exc).__name__}).") from exc
        finally:
            channel.close()

    def sftp(self) -> Any:
        if self._sftp is None:
            self._sftp = self._connection.sftp()
        return self._sftp

    def make_dirs(self, *paths: str) -> None:
        """``mkdir -p`` over SFTP (no new process on the pod)."""
        sftp = self.sftp()
        for path in paths:
            parts = [p for p in path.split("/") if p]
            current = "" if path.startswith("/") else "."
            for part in parts:
                current = f"{current}/{part}"
                try:
                    sftp.stat(current)
                except FileNotFoundError:
                    try:
                        sftp.mkdir(current)
                    except OSError as exc:
                        raise RemoteError(
                            f"Could not create {current} on the pod ({exc})."
                        ) from exc

    def put_text(self, path: str, text: str, *, mode: int = 0o644) -> None:
        """Write a file on the pod; a secret file is created 0600 before any byte lands."""
        sftp = self.sftp()
        temporary = f"{path}.tmp-{int(time.time() * 1000)}"
        with sftp.open(temporary, "w") as handle:
            handle.chmod(mode)
            handle.write(text.encode("utf-8"))
        sftp.posix_rename(temporary, path)

    def read_from(self, path: str, offset: int, limit: int = 1 << 20) -> bytes:
        """Bytes of ``path`` from ``offset`` (empty when it does not exist yet)."""
        try:
            with self.sftp().open(path, "rb") as handle:
                handle.seek(offset)
                return bytes(handle.read(limit))
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise TransientError(f"Could not read {path} on the pod ({exc}).") from exc


def connect(target: SshTarget, *, deadline: float, first_delay: float = 0.25) -> PodShell:
    """Open SSH to the pod, retrying refused or reset connections until ``deadline``."""
    import paramiko
    from fabric import Connection

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
            connection.transport.set_keepalive(15)
            # Many small request/response packets: Nagle's algorithm would add
            # ~40 ms to each of them.
            connection.transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            host_key = policy.seen or _host_key_of(connection)
            return PodShell(connection, host_key)
        except paramiko.AuthenticationException as exc:
            connection.close()
            raise AuthError(f"The pod refused the SSH key ({exc}).") from None
        except paramiko.SSHException as exc:
            connection.close()
            if "Host key" in str(exc) and "changed" in str(exc):
                raise RemoteError(str(exc), reason="host_key_changed") from None
            last_error = f"{type(exc).__name__}: {exc}"
        except (OSError, EOFError) as exc:
            connection.close()
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + delay > deadline:
            raise StepTimeout(
                f"SSH to {target.host}:{target.port} did not open before the deadline "
                f"(last error: {last_error})."
            )
        time.sleep(delay)
        delay = min(delay * 1.6, 5.0)


def _host_key_of(connection: Any) -> str:
    key = connection.transport.get_remote_server_key()
    return f"{key.get_name()} {base64.b64encode(key.asbytes()).decode()}"
