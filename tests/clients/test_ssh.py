"""thinnka's SSH client and detached jobs, against a real OpenSSH sshd."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from tests.world.sshd import FakeSshd, _free_port, generate_key
from thinnka.clients.ssh import SshTarget, connect
from thinnka.errors import AuthError, RemoteError, StepTimeout
from thinnka.pod.jobs import _LineSplitter, job_exit_code, start_job
from thinnka.resources import resource_dir


def _target(sshd: FakeSshd, **changes: object) -> SshTarget:
    values: dict[str, object] = {
        "host": sshd.host, "port": sshd.port, "user": sshd.user,
        "key_path": sshd.private_key_path,
    }  # fmt: skip
    values.update(changes)
    return SshTarget(**values)  # type: ignore[arg-type]


def test_connect_run_put_and_read(sshd_pod: FakeSshd, tmp_path: Path) -> None:
    with connect(_target(sshd_pod), deadline=time.monotonic() + 20) as shell:
        assert shell.host_key.startswith("ssh-ed25519 ")
        result = shell.run("echo out; echo err >&2; exit 7")
        assert (result.exit_code, result.stdout, result.stderr) == (7, "out\n", "err\n")
        secret = tmp_path / "token"
        shell.put_text(str(secret), "hf_secret", mode=0o600)
        assert secret.read_text() == "hf_secret"
        assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
        assert shell.read_from(str(secret), 3) == b"secret"
        assert shell.read_from(str(tmp_path / "missing"), 0) == b""


def test_a_command_reads_the_pods_bashrc_once(tmp_path: Path) -> None:
    """sshd's bash reads ~/.bashrc; the bash each command runs in does not read it again
    (an image's bashrc may set up pyenv or conda: a fifth of a second each time)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text(f"echo read >> {home / 'reads'}\nexport FROM_BASHRC=yes\n")
    with (
        FakeSshd(tmp_path / "sshd", home=home) as sshd,
        connect(_target(sshd), deadline=time.monotonic() + 20) as shell,
    ):
        assert shell.run('echo "$FROM_BASHRC"').stdout == "yes\n"  # still exported
        assert (home / "reads").read_text().count("read") == 1
        assert b"".join(c for c in shell.stream('echo "$FROM_BASHRC"') if c) == b"yes\n"
        assert (home / "reads").read_text().count("read") == 2


def test_a_changed_host_key_is_refused(sshd_pod: FakeSshd) -> None:
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOSw8m8J5SU0b0sQmPqBqC3tLz3rW3NwVZ7oF3Qn4Y0P"
    with pytest.raises(RemoteError, match="changed"):
        connect(_target(sshd_pod, pinned_host_key=other), deadline=time.monotonic() + 10)
    with connect(_target(sshd_pod), deadline=time.monotonic() + 10) as shell:
        pinned = shell.host_key
    with connect(_target(sshd_pod, pinned_host_key=pinned), deadline=time.monotonic() + 10):
        pass


def test_a_refused_key_is_an_auth_error(sshd_pod: FakeSshd, tmp_path: Path) -> None:
    stranger = generate_key(tmp_path / "stranger", "stranger")
    with pytest.raises(AuthError):
        connect(
            _target(sshd_pod, key_path=stranger.private_key_path), deadline=time.monotonic() + 10
        )


def test_connect_waits_for_a_late_sshd_until_the_deadline(tmp_path: Path) -> None:
    """sshd often starts listening after the port mapping shows; connect keeps trying."""
    late = FakeSshd(tmp_path / "late", port=_free_port("127.0.0.1")).start()
    target = _target(late)  # its keys exist once it has started
    late.stop()
    starter = threading.Timer(0.8, late.start)
    starter.start()
    try:
        with connect(target, deadline=time.monotonic() + 20) as shell:
            assert shell.run("true").ok
        late.stop()
        with pytest.raises(StepTimeout):
            connect(target, deadline=time.monotonic() + 0.5)
    finally:
        starter.join()
        late.stop()


def test_jobs_start_once_and_record_their_exit(sshd_pod: FakeSshd, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    job = resource_dir("recipes") / "scripts" / "job.sh"
    (run_dir / "job.sh").write_text(job.read_text())
    with connect(_target(sshd_pod), deadline=time.monotonic() + 20) as shell:
        argv = ["bash", "-c", 'echo "$1"; sleep 0.3; exit 3', "_", "it's $(quoted)"]
        pid = start_job(shell, str(run_dir), "demo", argv)
        assert start_job(shell, str(run_dir), "demo", argv) == pid  # never a second one
        deadline = time.monotonic() + 10
        while (code := job_exit_code(shell, str(run_dir), "demo")) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert code == 3
    assert (run_dir / "demo.log").read_text() == "it's $(quoted)\n"


def test_line_splitter_keeps_partial_lines_and_marks_progress() -> None:
    splitter = _LineSplitter()
    items, consumed = splitter.feed(b"a\n 10%|#  | 1/10 [00:01]\r 20%| 2/10 [00:02]\rpart")
    assert items == [("a", False), (" 10%|#  | 1/10 [00:01]", True), (" 20%| 2/10 [00:02]", True)]
    assert consumed == len(b"a\n 10%|#  | 1/10 [00:01]\r 20%| 2/10 [00:02]\r")
