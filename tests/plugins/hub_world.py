"""Pytest fixtures for the emulated Hugging Face Hub (`tests.world.hub.FakeHub`).

`fake_hub` (session) starts one emulator for the whole run. `hub_env` (function) resets it to
the seeded world and points every Hub client at it for one test.

The import-time problem, and how `hub_env` handles it: huggingface_hub copies `HF_ENDPOINT`,
`HF_HOME` and friends into `huggingface_hub.constants` **when first imported** (plus the
module-level `HfApi()` behind `huggingface_hub.whoami` & co.), and `datasets.config` does the
same with its own copies. Setting `os.environ` afterwards changes nothing for them. So the
fixture does both:

1. sets the environment (for libraries imported later in this process and for subprocesses):
   `HF_ENDPOINT`, a temporary `HF_HOME`, `HF_HUB_DISABLE_XET=1`, `HF_HUB_DISABLE_TELEMETRY=1`,
   and removes tokens/offline switches/cache overrides that could leak in from the machine;
2. monkeypatches the import-time copies in modules **already imported** (listed in
   `_constants()` below) so in-process calls of huggingface_hub, transformers and datasets use
   the emulator and the temporary cache. All patches are undone after the test. Cached
   `HfFileSystem` instances are dropped, since the emulator's repos are reset for every test.

Tests may still pass `endpoint=hub_env.endpoint` to `HfApi` explicitly (clearest), and for a
fully clean process use `subprocess.run(..., env=hub_env.env)`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.world.hub import FakeHub, HubTokens

__all__ = ["HubEnv", "fake_hub", "hub_env", "hub_environment", "patch_imported_clients"]

# Variables that would make a client use something other than the emulator and the temp cache.
_UNSET = (
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
    "HF_ASSETS_CACHE", "HUGGINGFACE_ASSETS_CACHE", "HF_XET_CACHE", "HF_DATASETS_CACHE",
    "HF_MODULES_CACHE", "TRANSFORMERS_CACHE", "HUGGINGFACE_CO_STAGING",
    "HF_HUB_ENABLE_HF_TRANSFER", "HF_DATASETS_DOWNLOADED_DATASETS_PATH",
    "HF_DATASETS_EXTRACTED_DATASETS_PATH",
)  # fmt: skip


@dataclass(frozen=True)
class HubEnv:
    """What a test gets from `hub_env`: the emulator, its tokens, and the environment."""

    hub: FakeHub
    home: Path  # the temporary HF_HOME
    env: dict[str, str]  # full environment for subprocesses

    @property
    def endpoint(self) -> str:
        """Base URL of the emulator."""
        return self.hub.endpoint

    @property
    def tokens(self) -> HubTokens:
        """Token values of the test user."""
        return self.hub.tokens


def hub_environment(hub: FakeHub, home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default `os.environ`) pointed at the emulator, for subprocesses."""
    env = dict(os.environ if base is None else base)
    for name in _UNSET:
        env.pop(name, None)
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(home),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
    )
    return env


def _constants(endpoint: str, home: Path) -> dict[str, dict[str, Any]]:
    hub_cache = str(home / "hub")
    datasets_cache = home / "datasets"
    return {
        "huggingface_hub.constants": {
            "ENDPOINT": endpoint,
            "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_HOME": str(home),
            "HF_HUB_CACHE": hub_cache,
            "HUGGINGFACE_HUB_CACHE": hub_cache,
            "HF_ASSETS_CACHE": str(home / "assets"),
            "HUGGINGFACE_ASSETS_CACHE": str(home / "assets"),
            "HF_TOKEN_PATH": str(home / "token"),
            "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
            "HF_XET_CACHE": str(home / "xet"),
            "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
            "CHECK_FOR_UPDATE_DONE_PATH": str(home / ".check_for_update_done"),
            "HF_HUB_OFFLINE": False,
            "HF_HUB_DISABLE_XET": True,
            "HF_HUB_DISABLE_TELEMETRY": True,
        },
        "huggingface_hub.utils._cache_manager": {"HF_HUB_CACHE": hub_cache},
        "datasets.config": {
            "HF_ENDPOINT": endpoint,
            "HUB_DATASETS_URL": endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_HUB_OFFLINE": False,
            "HF_DATASETS_OFFLINE": False,
            "HF_CACHE_HOME": str(home),
            "HF_DATASETS_CACHE": datasets_cache,
            "HF_MODULES_CACHE": home / "modules",
            "DOWNLOADED_DATASETS_PATH": datasets_cache / "downloads",
            "EXTRACTED_DATASETS_PATH": datasets_cache / "downloads" / "extracted",
            "HF_UPDATE_DOWNLOAD_COUNTS": False,
        },
    }


def patch_imported_clients(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path) -> None:
    """Point import-time copies in already-imported modules at `endpoint` and `home`."""
    from urllib.parse import urlsplit

    for module_name, values in _constants(endpoint, home).items():
        module = sys.modules.get(module_name)
        if module is None:
            continue  # imported later: it will read the environment we set
        for attr, value in values.items():
            if hasattr(module, attr):
                monkeypatch.setattr(module, attr, value)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and hasattr(constants, "HF_URL_HOSTS"):
        host = urlsplit(endpoint).hostname or "127.0.0.1"
        monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {host})
    hf_api = sys.modules.get("huggingface_hub.hf_api")
    if hf_api is not None and hasattr(hf_api, "api"):
        monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    hf_fs = sys.modules.get("huggingface_hub.hf_file_system")
    if hf_fs is not None:
        # fsspec caches HfFileSystem instances (and their listings) per arguments; the emulator
        # is reset between tests, so a cached listing would describe the previous test's repos.
        hf_fs.HfFileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def fake_hub() -> Iterator[FakeHub]:
    """One emulated Hub for the session (tiny artefacts built once, then cached on disk)."""
    with FakeHub() as hub:
        yield hub
        errors = hub.internal_errors()
    assert not errors, "the fake Hub hit internal errors:\n" + "\n".join(errors)


@pytest.fixture
def hub_env(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> HubEnv:
    """Reset the emulator and point Hub clients (env + imported constants) at it for one test."""
    fake_hub.reset()
    home = tmp_path_factory.mktemp("hf_home")
    env = hub_environment(fake_hub, home)
    for name in _UNSET:
        monkeypatch.delenv(name, raising=False)
    for name in (
        "HF_ENDPOINT",
        "HF_HOME",
        "HF_HUB_DISABLE_XET",
        "HF_HUB_DISABLE_TELEMETRY",
        "HF_HUB_DISABLE_UPDATE_CHECK",
    ):
        monkeypatch.setenv(name, env[name])
    patch_imported_clients(monkeypatch, fake_hub.endpoint, home)
    return HubEnv(hub=fake_hub, home=home, env=env)
