"""Shared pytest configuration: the emulated worlds are registered as plugins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.plugins.hub_world",
    "tests.plugins.postgres",
    "tests.plugins.runpod_world",
    "tests.plugins.thinnka_world",
    "tests.plugins.cluster_world",  # after runpod_world, whose helpers it imports
]

# Variables of the machine running the tests that would leak into thinnka's settings.
_SETTINGS_VARS = (
    "RUNPOD_API_KEY", "RUNPOD_API_BASE_URL", "HF_TOKEN", "HUGGINGFACE_HUB_TOKEN",
    "SSH_PUBLIC_KEY", "RUNPOD_SSH_PUBLIC_KEY", "SSH_PRIVATE_KEY_PATH", "PROGRESS_WEBHOOK_URL",
    "DISCORD_WEBHOOK_URL", "WANDB_API_KEY", "THINNKA_STATE_DIR", "THINNKA_DB_URL",
    "THINNKA_RUNPOD_API",
)  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working folder with none of this machine's thinnka settings."""
    for name in _SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    yield tmp_path


@pytest.fixture
def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
