"""The sshd "pod" works with real SSH clients: the OpenSSH binary, paramiko and SFTP.

Why: thinnka reaches pods with `ssh`/Fabric/SFTP, so the stand-in must be a real OpenSSH server
that accepts exactly the authorized keys, serves SFTP, and tolerates parallel connections.
"""

from __future__ import annotations

import io
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import paramiko
import pytest

from tests.world.runpod import FakeRunpod
from tests.world.sshd import FakeSshd, fingerprint, generate_key

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sshd(runpod_account: FakeRunpod, sshd_pod: FakeSshd) -> FakeSshd:
    """The session sshd with its authorized keys reset to the test key only."""
    return sshd_pod


@pytest.fixture
def client(sshd: FakeSshd) -> Iterator[paramiko.SSHClient]:
    yield connect(sshd, sshd.private_key_path)


def connect(sshd: FakeSshd, key: Path, port: int | None = None) -> paramiko.SSHClient:
    ssh = paramiko.SSHClient()
    ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    ssh.connect(
        sshd.host,
        port=port or sshd.port,
        username=sshd.user,
        key_filename=str(key),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return ssh


def test_openssh_client_runs_a_command(sshd: FakeSshd) -> None:
    done = subprocess.run(sshd.ssh_command("echo hi"), capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr


def test_a_session_has_the_pods_home_not_this_machines(sshd: FakeSshd) -> None:
    """HOME is the pod's, with an image's stock bashrc: this machine's own ~/.bashrc (CI's
    initialises pyenv) is never read by the emulated pod's shells."""
    script = 'echo "$HOME"; case $- in *i*) echo interactive;; esac; echo "${PYENV_ROOT-unset}"'
    out = subprocess.run(
        sshd.ssh_command(script), capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    assert out == [str(sshd.home), "unset"]
    assert "*) return;;" in (sshd.home / ".bashrc").read_text()


def test_host_key_can_be_pinned(sshd: FakeSshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line + "\n")
    argv = sshd.ssh_command("true")
    argv[argv.index("StrictHostKeyChecking=no")] = "StrictHostKeyChecking=yes"
    argv[argv.index("UserKnownHostsFile=/dev/null")] = f"UserKnownHostsFile={known_hosts}"
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    assert sshd.host_key_fingerprint.startswith("SHA256:")


def test_paramiko_exec_and_sftp_roundtrip(
    sshd: FakeSshd, client: paramiko.SSHClient, tmp_path: Path
) -> None:
    served = client.get_transport().get_remote_server_key()  # type: ignore[union-attr]
    assert f"{served.get_name()} {served.get_base64()}".startswith(sshd.host_public_key[:40])
    _, out, _ = client.exec_command(
        "echo $((6 * 7)) $THINNKA_RUN", environment={"THINNKA_RUN": "r1"}
    )
    assert out.read() == b"42 r1\n" and out.channel.recv_exit_status() == 0  # AcceptEnv works
    remote = str(tmp_path / "uploaded.bin")
    payload = bytes(range(256)) * 512
    with client.open_sftp() as sftp:
        sftp.putfo(io.BytesIO(payload), remote)
        local = tmp_path / "downloaded.bin"
        sftp.get(remote, str(local))
        assert sftp.stat(remote).st_size == len(payload)
    assert local.read_bytes() == payload
    client.close()


def test_wrong_key_is_refused_until_authorized(sshd: FakeSshd, tmp_path: Path) -> None:
    stranger = generate_key(tmp_path / "stranger", "stranger")
    refused = subprocess.run(
        sshd.ssh_command("true", key=stranger.private_key_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    with pytest.raises(paramiko.AuthenticationException):
        connect(sshd, stranger.private_key_path)
    sshd.authorize(stranger.public_key)
    connect(sshd, stranger.private_key_path).close()
    sshd.reset_authorized_keys()
    with pytest.raises(paramiko.AuthenticationException):
        connect(sshd, stranger.private_key_path)


def test_parallel_connections_and_channels(sshd: FakeSshd) -> None:
    def run(i: int) -> bytes:
        ssh = connect(sshd, sshd.private_key_path)
        try:
            outs = [ssh.exec_command(f"echo {i}-{n}")[1] for n in range(2)]
            return b"".join(out.read() for out in outs)
        finally:
            ssh.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(8)))
    assert results == [b"".join(f"{i}-{n}\n".encode() for n in range(2)) for i in range(8)]


def test_pod_from_fake_runpod_is_reachable_with_its_own_key(
    runpod_account: FakeRunpod, sshd: FakeSshd, tmp_path: Path
) -> None:
    """End to end: PUBLIC_KEY in the create call, then SSH to the *public* port-22 mapping."""
    key = generate_key(tmp_path / "thinnka_pod_key", "thinnka")
    create = """mutation($i: PodFindAndDeployOnDemandInput) { podFindAndDeployOnDemand(input: $i)
      { id } }"""
    spec = {
        "name": "thinnka-e2e",
        "imageName": "img",
        "gpuTypeId": "NVIDIA L40S",
        "cloudType": "SECURE",
        "ports": "22/tcp",
        "env": [{"key": "PUBLIC_KEY", "value": key.public_key}],
    }
    auth = {"Authorization": f"Bearer {runpod_account.api_key}"}
    with httpx.Client(base_url=runpod_account.base_url, trust_env=False, headers=auth) as api:
        made = api.post("/graphql", json={"query": create, "variables": {"i": spec}}).json()
        pod_id = made["data"]["podFindAndDeployOnDemand"]["id"]
        runpod_account.advance_time(5)  # past the emulator's boot delay
        query = '{ pod(input: {podId: "%s"}) { runtime { ports { ip isIpPublic privatePort publicPort } } } }'  # noqa: E501
        ports = api.post("/graphql", json={"query": query % pod_id}).json()["data"]["pod"][
            "runtime"
        ]["ports"]
    first_22 = next(p for p in ports if p["privatePort"] == 22)
    public_22 = next(p for p in ports if p["privatePort"] == 22 and p["isIpPublic"])
    # A client that takes the first port-22 entry aims at the pod's private address, not sshd.
    # (Never dialled here: it is not a loopback address.)
    assert not first_22["isIpPublic"] and first_22["ip"] != sshd.host
    assert (public_22["ip"], public_22["publicPort"]) == (sshd.host, sshd.port)
    ssh = paramiko.SSHClient()
    ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    ssh.connect(
        public_22["ip"],
        port=public_22["publicPort"],
        username=sshd.user,
        key_filename=str(key.private_key_path),
        look_for_keys=False,
        allow_agent=False,
    )
    assert ssh.exec_command("echo pod")[1].read() == b"pod\n"
    ssh.close()


def test_fingerprint_matches_ssh_keygen(sshd: FakeSshd) -> None:
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(sshd.workdir / "ssh_host_ed25519_key.pub")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.split()[1] == fingerprint(sshd.host_public_key)


def test_stop_closes_the_port(tmp_path: Path) -> None:
    from tests.plugins.runpod_world import require_sshd  # imported late: the plugin is rewritten

    require_sshd()
    with FakeSshd(tmp_path / "own") as own:
        port = own.port
        assert (
            subprocess.run(own.ssh_command("true"), capture_output=True, timeout=30).returncode == 0
        )
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_missing_sshd_fails_in_ci_and_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.plugins import runpod_world

    monkeypatch.setattr(runpod_world, "find_sshd", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y openssh-server"):
        runpod_world.require_sshd()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        runpod_world.require_sshd()
