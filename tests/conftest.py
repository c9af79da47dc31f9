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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``-n N``), the ``slow`` tests first, spread over the workers.

    Why: the work-stealing scheduler gives each worker an equal, contiguous share of the
    collection and lets an idle worker take the back half of the longest queue. The few
    slow end-to-end tests (minutes each, beside ~1100 tests of about a second) would sit in
    one or two workers' shares, in file order, and the run would end with one worker on
    them while the others wait. So each share is its part of the slow tests, then its part
    of the rest: every worker starts on minutes of work and ends on seconds, and what is
    stolen is quick. Every worker computes the same order (a worker's collection must match
    the others'); tests never depend on their order, only their start time changes.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers < 2:
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    rest = [item for item in items if item.get_closest_marker("slow") is None]
    items[:] = [item for k in range(workers) for item in (*slow[k::workers], *rest[k::workers])]


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
