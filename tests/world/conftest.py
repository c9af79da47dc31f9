"""Fixtures shared by the emulator's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.world.runpod import FakeRunpod


@pytest.fixture
def v2(runpod_account: FakeRunpod) -> Iterator[httpx.Client]:
    """A plain HTTP client on the emulated REST v2 API, with the account's key."""
    headers = {"Authorization": f"Bearer {runpod_account.api_key}"}
    with httpx.Client(
        base_url=runpod_account.rest_url, headers=headers, trust_env=False, timeout=10
    ) as client:
        yield client
