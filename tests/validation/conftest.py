"""An in-process world for validation tests: the emulated Hub and Runpod, a .env of canaries.

``thinnka plan`` and ``run`` are called through ``run_app`` in this process (no subprocess
per case), so hundreds of hostile inputs stay cheap; the Runpod emulator runs without an
sshd because nothing here may ever get as far as a pod, and its ledger proves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.plugins.hub_world import HubEnv
from tests.world.runpod import FakeRunpod
from thinnka.cli import app
from thinnka.cli.exit_codes import run_app
from thinnka.settings import load_settings
from thinnka.store import open_store

WANDB_CANARY = "wandb-canary-4f1c9d2e7b"


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@dataclass
class PlanWorld:
    workdir: Path
    hub_env: HubEnv
    runpod: FakeRunpod
    capsys: pytest.CaptureFixture[str]
    dotenv: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.hub_env.hub.models.chat

    def write_dotenv(self, **changes: str) -> None:
        self.dotenv.update(changes)
        text = "".join(f"{key}={value}\n" for key, value in self.dotenv.items())
        (self.workdir / ".env").write_text(text)

    def secrets(self) -> list[str]:
        tokens = self.hub_env.tokens
        return [self.runpod.api_key, tokens.write, tokens.read, WANDB_CANARY]

    def cli(self, *args: str) -> Outcome:
        self.capsys.readouterr()
        code = run_app(app, list(args))
        captured = self.capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    def runs(self) -> int:
        if not (self.workdir / "state" / "thinnka.db").exists():
            return 0
        state = self.workdir / "state"
        settings = load_settings(environ={"THINNKA_STATE_DIR": str(state)}, cwd=self.workdir)
        return open_store(settings).count_runs()

    def assert_nothing_created(self) -> None:
        assert self.runpod.ledger() == [], "a pod was created"
        assert self.runs() == 0, "a run row was created"


@pytest.fixture(scope="session")
def bare_runpod() -> Iterator[FakeRunpod]:
    """The Runpod emulator without an sshd: catalog and ledger only."""
    with FakeRunpod() as fake:
        yield fake


@pytest.fixture
def plan_world(
    workdir: Path,
    hub_env: HubEnv,
    bare_runpod: FakeRunpod,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[PlanWorld]:
    bare_runpod.reset()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    world = PlanWorld(workdir, hub_env, bare_runpod, capsys)
    # `run` needs key material before it asks anything; no pod is ever reached here.
    private_key = workdir / "id_ed25519"
    private_key.write_text("not a key: nothing here gets as far as SSH\n")
    world.write_dotenv(
        RUNPOD_API_KEY=bare_runpod.api_key,
        RUNPOD_API_BASE_URL=bare_runpod.base_url,
        HF_TOKEN=hub_env.tokens.write,
        HF_ENDPOINT=hub_env.endpoint,
        SSH_PUBLIC_KEY="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIvalidationWorldOnly thinnka-tests",
        SSH_PRIVATE_KEY_PATH=str(private_key),
    )
    yield world
    bare_runpod.reset()
