"""A real OpenSSH `sshd` on 127.0.0.1 that stands in for a Runpod pod's SSH endpoint.

Why the real daemon and not an in-process SSH server: thinnka drives pods with the `ssh`
binary, Fabric/paramiko and SFTP, and the failure modes that matter (host keys, key auth,
parallel channels, subsystems) are OpenSSH's. The daemon runs unprivileged-style with its own
config, host key, pid file and authorized_keys in a private directory, never touching the
machine's sshd. The fake Runpod maps each pod's public port 22 to it.

The `ssh`/`sftp` user is the current user (root in CI), because sshd can only log in as an
existing account. Commands therefore run on this machine, not in an isolated pod. Their HOME,
though, is the pod's own (``home``, a folder of the daemon's), as an image's /root is: its
``.bashrc`` is the stock Debian/Ubuntu one, which stops at once in a non-interactive shell. This
machine's own ~/.bashrc (CI's initialises pyenv: about 0.1 s) is no pod's, and sshd's login
shell would otherwise read it before every command thinnka runs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["FakeSshd", "SshKeyPair", "SshdUnavailable", "find_sshd", "generate_key"]

_SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")
_PRIVSEP_DIR = Path("/run/sshd")  # Debian/Ubuntu sshd refuses to start as root without it

# The head of the stock ~/.bashrc of Debian and Ubuntu images (/etc/skel/.bashrc, which the
# CUDA and Runpod images keep for root): a shell that is not interactive stops right there.
IMAGE_BASHRC = """\
# ~/.bashrc: executed by bash(1) for non-login shells.

# If not running interactively, don't do anything
case $- in
    *i*) ;;
      *) return;;
esac

HISTCONTROL=ignoreboth
"""


class SshdUnavailable(RuntimeError):
    """OpenSSH's server (or ssh-keygen) is not installed: `apt-get install openssh-server`."""


@dataclass(frozen=True)
class SshKeyPair:
    """An ed25519 key pair on disk; `public_key` is the one-line OpenSSH form."""

    private_key_path: Path
    public_key: str


def find_sshd() -> str | None:
    """Absolute path of `sshd` (it must be absolute: sshd re-executes itself), or None."""
    found = [c for c in _SSHD_CANDIDATES if os.access(c, os.X_OK)]
    which = shutil.which("sshd")
    return found[0] if found else (os.path.abspath(which) if which else None)


def generate_key(path: Path, comment: str) -> SshKeyPair:
    """A fresh passphrase-less ed25519 key made by `ssh-keygen` (mode 0600, as ssh demands)."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise SshdUnavailable("ssh-keygen is not installed (apt-get install openssh-client)")
    path.unlink(missing_ok=True)
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return SshKeyPair(path, path.with_suffix(".pub").read_text().strip())


def fingerprint(public_key: str) -> str:
    """OpenSSH's `SHA256:...` fingerprint of a one-line public key (what `ssh-keygen -l` says)."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class FakeSshd:
    """One `sshd -D -e -f <config>` process with a generated client key already authorized."""

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sshd_path: str | None = None,
        user: str | None = None,
        home: str | os.PathLike[str] | None = None,
        extra_config: Sequence[str] = (),
    ) -> None:
        """``home``: the sessions' HOME (default: a folder of the daemon's with the image's
        stock ``.bashrc``; a given one is used as it is)."""
        self.host = host
        self.user = user or pwd.getpwuid(os.geteuid()).pw_name
        self._wanted_port = port
        self._sshd_path = sshd_path
        self._extra_config = tuple(extra_config)
        self._own_workdir = workdir is None
        self.workdir = (
            Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="fake-sshd-"))
        )
        self._own_home = home is None
        self.home = Path(home) if home is not None else self.workdir / "home"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.client_key: SshKeyPair | None = None
        self.host_key: SshKeyPair | None = None

    # ---- what clients need -------------------------------------------------------------------
    @property
    def private_key_path(self) -> Path:
        return self._started().client_key.private_key_path  # type: ignore[union-attr]

    @property
    def public_key(self) -> str:
        return self._started().client_key.public_key  # type: ignore[union-attr]

    @property
    def host_public_key(self) -> str:
        return self._started().host_key.public_key  # type: ignore[union-attr]

    @property
    def host_key_fingerprint(self) -> str:
        return fingerprint(self.host_public_key)

    @property
    def known_hosts_line(self) -> str:
        """A known_hosts entry, so clients can verify the host key instead of ignoring it."""
        key_type, key_data = self.host_public_key.split()[:2]
        return f"[{self.host}]:{self.port} {key_type} {key_data}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "sshd.log"

    @property
    def authorized_keys_path(self) -> Path:
        return self.workdir / "authorized_keys"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def ssh_command(self, *remote: str, key: Path | None = None) -> list[str]:
        """An `ssh` argv that logs in with the test key and ignores host-key persistence."""
        return [
            "ssh", "-i", str(key or self.private_key_path), "-p", str(self.port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
            f"{self.user}@{self.host}", *remote,
        ]  # fmt: skip

    def authorize(self, public_key: str, env: Mapping[str, str] | None = None) -> None:
        """Also accept this key (what a Runpod image does with the pod's PUBLIC_KEY env).

        With ``env`` (the pod's container env, e.g. RUNPOD_POD_ID), sessions of this
        key get it, as processes in a pod see the pod's env; the newest pod of a key wins.
        """
        lines = [line.strip() for line in public_key.splitlines() if line.strip()]
        if env:
            options = ",".join(f'environment="{k}={v}"' for k, v in env.items())
            blobs = {line.split()[1] for line in lines if len(line.split()) > 1}
            kept = [
                line
                for line in self.authorized_keys_path.read_text().splitlines()
                if not any(f" {blob}" in f" {line}" for blob in blobs)
            ]
            kept += [f"{options} {line}" for line in lines]
            self.authorized_keys_path.write_text("\n".join(kept) + "\n")
            return
        known = set(self.authorized_keys_path.read_text().splitlines())
        with self.authorized_keys_path.open("a") as handle:
            for line in lines:
                if line not in known:
                    handle.write(line + "\n")

    def reset_authorized_keys(self) -> None:
        """Only the generated test key is accepted again (keys added by `authorize` go)."""
        self.authorized_keys_path.write_text(self.public_key + "\n")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> FakeSshd:
        """Generate keys and config, launch sshd, return once it greets with an SSH banner."""
        if self._proc is not None:
            raise RuntimeError("sshd is already running")
        sshd = self._sshd_path or find_sshd()
        if sshd is None:
            raise SshdUnavailable("sshd is not installed (apt-get install -y openssh-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._own_home:
            self.home.mkdir(mode=0o700, exist_ok=True)
            (self.home / ".bashrc").write_text(IMAGE_BASHRC)
        self.host_key = generate_key(self.workdir / "ssh_host_ed25519_key", "fake-pod-host")
        self.client_key = generate_key(self.workdir / "id_ed25519", "thinnka-test-client")
        self.reset_authorized_keys()
        if os.geteuid() == 0 and not _PRIVSEP_DIR.exists():
            _PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        for _attempt in range(5):  # a free port can be taken between probing and binding
            self.port = self._wanted_port or _free_port(self.host)
            config = self.workdir / "sshd_config"
            config.write_text(self._config())
            with self.log_path.open("wb") as log:
                self._proc = subprocess.Popen(
                    [sshd, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            if self._wait_ready(deadline):
                return self
            self._reap()
            if self._wanted_port or "Bind to port" not in self.log_tail():
                break
        raise RuntimeError(f"sshd did not start on {self.host}:{self.port}:\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the daemon (and its per-connection children), then remove generated files."""
        self._reap(timeout)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FakeSshd:
        return self.start() if self._proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- internals ---------------------------------------------------------------------------
    def _started(self) -> FakeSshd:
        if self.client_key is None or self.host_key is None:
            raise RuntimeError("FakeSshd is not started")
        return self

    def _config(self) -> str:
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"HostKey {self.workdir / 'ssh_host_ed25519_key'}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            f"AllowUsers {self.user}",
            f"PermitRootLogin {'yes' if self.user == 'root' else 'no'}",
            "UsePAM no",
            "StrictModes no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "AuthenticationMethods publickey",
            "AcceptEnv *",
            # The pod's home, not this machine's (module docstring).
            f"SetEnv HOME={self.home}",
            # A pod's env for its key's sessions (authorize): what Runpod sets, and what an
            # emulated image's ENV does (FakeRunpod.set_image_env): PATH, and pyenv's
            # PYENV_VERSION=system so this machine's pyenv shims (a root bashrc may put them
            # first) run the python3 that PATH names; uv's and pip's settings for the
            # emulated package index.
            "PermitUserEnvironment RUNPOD_*,PATH,PYENV_VERSION,UV_*,PIP_*",
            "Subsystem sftp internal-sftp",
            "MaxStartups 256",
            "MaxSessions 256",
            "MaxAuthTries 20",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding yes",
            "LogLevel INFO",
            *self._extra_config,
        ]
        return "\n".join(lines) + "\n"

    def _wait_ready(self, deadline: float) -> bool:
        """Poll (every 10 ms, no fixed sleeps) until the daemon answers with its banner."""
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as conn:
                    if conn.recv(64).startswith(b"SSH-"):
                        return True
            except OSError:
                pass
            time.sleep(0.01)
        return False

    def _reap(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        # The group this session leader made holds sshd's per-connection children.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
