"""pytest fixtures for the emulated Runpod world: a real sshd "pod" behind the fake Runpod API.

Why session-scoped servers with a function-scoped reset: starting sshd costs ~0.15 s and the
emulator a few milliseconds, but resetting the account (stock, faults, pods, ledger, authorized
keys) costs microseconds, so every test gets a clean account without paying for new servers.

Register with ``pytest_plugins = ["tests.plugins.runpod_world"]`` in the top-level conftest.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.world.runpod import FakeRunpod
from tests.world.sshd import FakeSshd, SshdUnavailable, find_sshd

__all__ = [
    "fake_runpod",
    "in_ci",
    "require_sshd",
    "runpod_account",
    "runpod_env",
    "sshd_pod",
]

_INSTALL_HINT = "OpenSSH server is not installed; run: apt-get install -y openssh-server"


def in_ci() -> bool:
    """True on CI runners (`CI=true`), where a missing dependency is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_sshd(reason: str | None = None) -> None:
    """Fail under CI (it installs openssh-server on purpose) or skip locally when sshd is absent.

    With a `reason` (sshd exists but cannot be used) the same fail-or-skip rule applies.
    """
    if reason is None:
        if find_sshd() is not None and shutil.which("ssh-keygen") is not None:
            return
        reason = _INSTALL_HINT
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sshd_pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSshd]:
    """A running OpenSSH sshd on 127.0.0.1 with a generated, authorized ed25519 client key."""
    require_sshd()
    sshd = FakeSshd(tmp_path_factory.mktemp("sshd-pod"))
    try:
        sshd.start()
    except SshdUnavailable as exc:
        require_sshd(str(exc))
    try:
        yield sshd
    finally:
        sshd.stop()


@pytest.fixture(scope="session")
def fake_runpod(sshd_pod: FakeSshd) -> Iterator[FakeRunpod]:
    """The Runpod emulator; every pod's public 22/tcp is `sshd_pod`, and pods take the
    emulator's default (short, realistic) boot delay: runtime and `ssh.direct` are null at first.

    Pods created with a PUBLIC_KEY env get that key authorized in `sshd_pod`, as Runpod images
    do at boot, so a client can SSH in with the key it generated itself.
    """
    fake = FakeRunpod(
        ssh_host=sshd_pod.host,
        ssh_port=sshd_pod.port,
        authorize_key=sshd_pod.authorize,
    )
    with fake:
        yield fake


@pytest.fixture
def runpod_account(fake_runpod: FakeRunpod, sshd_pod: FakeSshd) -> Iterator[FakeRunpod]:
    """The session emulator, reset for this test (default stock, no pods, faults or ledger)."""
    fake_runpod.reset()
    sshd_pod.reset_authorized_keys()
    yield fake_runpod
    fake_runpod.reset()


@pytest.fixture
def runpod_env(runpod_account: FakeRunpod, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`RUNPOD_API_BASE_URL` and `RUNPOD_API_KEY` pointing at the reset emulator."""
    env = runpod_account.client_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return env
