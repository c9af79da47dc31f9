"""The whole emulated world for end-to-end runs of the real ``thinnka`` program.

A ``World`` is a working folder whose ``.env`` points thinnka at the Runpod
emulator, the Hub emulator and the sshd pod, with a fresh SSH key pair that
the emulated Runpod installs on the pod (as Runpod images do with
``PUBLIC_KEY``). thinnka runs as a real subprocess, so it can be killed.

The emulated pods all share this machine, like pods of one prebuilt image:
their "volume" is a temporary folder (``THINNKA_REMOTE_ROOT``) and their
trainer venv (``THINNKA_REMOTE_VENV``) is made once per session. That venv
sees the test environment's packages through a ``.pth`` file and holds a copy
of each one's metadata, so the setup script's default installer (uv, which
counts only what lies in the venv itself) finds TRL already installed, and
anything it installs lands in the pod venv, never in the test environment.
Images whose trainer venv the setup builds itself, from each python layout an
image may have, are in ``tests/world/images.py``.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import pwd
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.hub_world import hub_environment
from tests.world.hub import FakeHub
from tests.world.images import POD_PATH
from tests.world.processes import process_arguments
from tests.world.runpod import FakeRunpod
from tests.world.sshd import FakeSshd, generate_key

__all__ = [
    "BOTH_TRANSPORTS",
    "World",
    "build_world",
    "make_pod_venv",
    "pod_venv",
    "runpod_api",
    "world",
    "world_database",
]

# Runs a test once per Runpod transport against the same emulated account (issue 9).
BOTH_TRANSPORTS = pytest.mark.parametrize("runpod_api", ["rest", "graphql"])

_OUR_VARS = ("RUNPOD_API_KEY", "RUNPOD_API_BASE_URL", "HF_TOKEN", "HUGGINGFACE_HUB_TOKEN",
             "SSH_PUBLIC_KEY", "RUNPOD_SSH_PUBLIC_KEY", "SSH_PRIVATE_KEY_PATH",
             "PROGRESS_WEBHOOK_URL", "DISCORD_WEBHOOK_URL", "WANDB_API_KEY",
             "THINNKA_STATE_DIR", "THINNKA_DB_URL", "THINNKA_RUNPOD_API")  # fmt: skip


# Files of a dist-info folder that describe one installation, not the distribution.
_INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def _copy_metadata(site_packages: Path) -> None:
    """Each distribution of this environment's metadata (its dist-info folder), copied into
    ``site_packages``: what uv reads to count it installed. Its RECORD lists only the copy,
    so an installer that replaces it removes the copy, never the test environment's files.
    Editable installs (thinnka itself) are left out: the pod never imports them."""
    for dist in metadata.distributions(path=site.getsitepackages()):
        info = Path(getattr(dist, "_path", ""))
        target = site_packages / info.name
        if not info.name.endswith(".dist-info") or target.exists():
            continue  # the first on the path wins, as for imports
        if (info / "direct_url.json").exists() and '"editable": true' in (
            info / "direct_url.json"
        ).read_text():
            continue
        shutil.copytree(info, target, ignore=shutil.ignore_patterns(*_INSTALL_ONLY))
        (target / "INSTALLER").write_text("thinnka-tests\n")
        files = (p for p in target.rglob("*") if p.is_file())
        record = sorted(f"{p.relative_to(site_packages).as_posix()},," for p in files)
        (target / "RECORD").write_text("\n".join([*record, f"{info.name}/RECORD,,"]) + "\n")


def make_pod_venv(venv: Path) -> Path:
    """A venv layered over this environment's packages (see the module docstring)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = venv / "lib" / version / "site-packages"
    (site_packages / "_test_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _copy_metadata(site_packages)
    # Console scripts (accelerate, trl, ...) re-pointed at the pod venv's python.
    ours = Path(sys.prefix) / "bin"
    for script in ("accelerate", "trl"):
        text = (ours / script).read_text()
        _, _, body = text.partition("\n")
        target = venv / "bin" / script
        target.write_text(f"#!{venv / 'bin' / 'python'}\n{body}")
        target.chmod(0o755)
    return venv


@pytest.fixture(scope="session")
def pod_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The emulated pods' trainer venv, made once per session."""
    return make_pod_venv(tmp_path_factory.mktemp("pod") / "venv")


@dataclass
class World:
    workdir: Path
    runpod: FakeRunpod
    hub: FakeHub
    sshd: FakeSshd
    remote_root: Path
    env: dict[str, str]
    dotenv: dict[str, str] = field(default_factory=dict)

    @property
    def secrets(self) -> list[str]:
        return [self.runpod.api_key, self.runpod.read_only_key, *vars(self.hub.tokens).values()]

    def write_dotenv(self, **changes: str) -> None:
        self.dotenv.update(changes)
        lines = [f"{key}={value}" for key, value in self.dotenv.items()]
        (self.workdir / ".env").write_text("\n".join(lines) + "\n")

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "thinnka", *args]

    def thinnka(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def process_arguments(self) -> str:
        """The command lines of this world's processes, one a line: what thinnka started
        (its HOME is this world's), the pods' (their env names one of this test's pods) and
        this test's descendants; never another pytest-xdist worker's (tests/world/processes.py)."""
        pods = [f"RUNPOD_POD_ID={entry.pod_id}" for entry in self.runpod.ledger()]
        return process_arguments([f"HOME={self.env['HOME']}", *pods])

    def show(self, run_id: str) -> dict[str, Any]:
        result = self.thinnka("show", run_id, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]


def build_world(
    root: Path,
    runpod: FakeRunpod,
    hub: FakeHub,
    sshd: FakeSshd,
    pod_venv: Path,
    runpod_api: str = "rest",
) -> World:
    """A working folder under ``root`` whose .env points thinnka at the emulated world."""
    workdir, home, remote_root = root / "work", root / "home", root / "pod-volume"
    for folder in (workdir, home, remote_root):
        folder.mkdir(parents=True)
    keys = generate_key(root / "id_ed25519", "thinnka-e2e")
    env = hub_environment(hub, home / "hf")
    for name in _OUR_VARS:
        env.pop(name, None)
    env.update(HOME=str(home), PYTHONUNBUFFERED="1", COLUMNS="200")
    built = World(workdir, runpod, hub, sshd, remote_root, env)
    # The pods' image ships uv (as uv-based images do): setup uses it rather than
    # bootstrapping one from PyPI, which tests/e2e/test_layouts.py plays offline.
    uv = Path(sys.prefix) / "bin" / "uv"
    if uv.exists():
        tools = root / "pod-tools"
        tools.mkdir()
        (tools / "uv").symlink_to(uv)
        runpod.set_image_env("*", {"PATH": f"{tools}:{POD_PATH}"})
    built.write_dotenv(
        RUNPOD_API_KEY=runpod.api_key,
        RUNPOD_API_BASE_URL=runpod.base_url,
        HF_TOKEN=hub.tokens.write,
        HF_ENDPOINT=hub.endpoint,
        SSH_PUBLIC_KEY=keys.public_key,
        SSH_PRIVATE_KEY_PATH=str(keys.private_key_path),
        THINNKA_REMOTE_ROOT=str(remote_root),
        THINNKA_REMOTE_VENV=str(pod_venv),
        THINNKA_SSH_USER=pwd.getpwuid(os.getuid()).pw_name,
        THINNKA_RUNPOD_API=runpod_api,
    )
    return built


@pytest.fixture
def world_database(request: pytest.FixtureRequest) -> str | None:
    """The world's THINNKA_DB_URL: none (SQLite) unless a test parametrizes this
    fixture indirectly with ``"postgresql"`` (a fresh database on the test server)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return None


@pytest.fixture
def runpod_api() -> str:
    """The world's Runpod transport: REST v2 (the default) unless a test parametrizes it."""
    return "rest"


@pytest.fixture
def world(
    tmp_path: Path,
    runpod_account: FakeRunpod,
    sshd_pod: FakeSshd,
    fake_hub: FakeHub,
    pod_venv: Path,
    world_database: str | None,
    runpod_api: str,
) -> Iterator[World]:
    fake_hub.reset()
    built = build_world(tmp_path, runpod_account, fake_hub, sshd_pod, pod_venv, runpod_api)
    if world_database:
        built.write_dotenv(THINNKA_DB_URL=world_database)
    yield built
