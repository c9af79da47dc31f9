"""paramiko's, invoke's and the socket's exceptions as thinnka's (one place for the rules).

Most specific first: a command past its timeout is a ``StepTimeout``; a changed host key a
``RemoteError`` (``host_key_changed``); a key that needs a passphrase a ``ConfigError``; a
refused key an ``AuthError``; no common algorithm, or an SFTP server that refuses, a
``RemoteError``; a dropped connection, a broken channel or any socket error a
``TransientError``; anything else a ``RemoteError`` naming its class.
"""

from __future__ import annotations

from thinnka.errors import (
    AuthError,
    ConfigError,
    RemoteError,
    StepTimeout,
    ThinnkaError,
    TransientError,
    first_line,
    translated,
)

__all__ = ["ssh_errors", "translate_ssh_error"]


def translate_ssh_error(exc: BaseException, what: str) -> ThinnkaError:
    """The thinnka error for ``exc``, raised by paramiko, invoke or a socket during ``what``."""
    if isinstance(exc, ThinnkaError):
        return exc
    import paramiko
    from invoke.exceptions import AuthFailure, CommandTimedOut, ThreadException

    detail = f"{type(exc).__name__}: {first_line(exc)}"
    if isinstance(exc, CommandTimedOut):
        return StepTimeout(f"{what}: the remote command ran past {getattr(exc, 'timeout', '?')} s.")
    if isinstance(exc, paramiko.BadHostKeyException):
        return RemoteError(
            f"{what}: the pod's host key changed ({detail}).", reason="host_key_changed"
        )
    if isinstance(exc, paramiko.PasswordRequiredException):
        return ConfigError(f"{what}: the SSH private key needs a passphrase; use one without.")
    if isinstance(exc, paramiko.AuthenticationException | AuthFailure):
        return AuthError(f"{what}: the pod refused the SSH key ({detail}).")
    if isinstance(exc, paramiko.IncompatiblePeer):
        return RemoteError(f"{what}: the pod's sshd speaks no common algorithm ({detail}).")
    if isinstance(exc, paramiko.SFTPError):
        return RemoteError(f"{what}: the pod's SFTP server refused ({detail}).")
    if isinstance(exc, paramiko.SSHException | ThreadException | EOFError | OSError):
        return TransientError(f"{what}: the SSH connection to the pod broke ({detail}).")
    return RemoteError(f"{what} failed ({detail}).")


def ssh_errors(what: str) -> translated:
    """Raise the thinnka error for any exception of the block (context manager); thinnka's
    own errors pass untouched (``translate_ssh_error`` returns them as they are)."""
    return translated(lambda exc: translate_ssh_error(exc, what))
