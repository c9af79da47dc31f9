"""The remote services a run talks to, built lazily from settings.

Handlers reach Runpod, the Hub and the pod only through a ``Services``, so a
test (or a future transport) can swap any of them: ``Services`` is the
interface they may rely on, ``LiveServices`` the one built from settings.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from thinnka.settings import Settings

if TYPE_CHECKING:
    from thinnka.clients.hub import HubClient
    from thinnka.clients.runpod import RunpodApi
    from thinnka.clients.ssh import PodShell
    from thinnka.store import Store

__all__ = ["LiveServices", "Services", "ShellPool"]


class ShellPool:
    """The pod shells this process has open, one per pod of a run, reused across steps."""

    def __init__(self) -> None:
        self._shells: dict[str, PodShell] = {}

    def get(self, key: str) -> PodShell | None:
        """The shell kept under ``key`` (a run and its pod) if it is still connected."""
        shell = self._shells.get(key)
        return shell if shell is not None and shell.is_active() else None

    def put(self, key: str, shell: PodShell) -> None:
        self._shells[key] = shell

    def close_all(self) -> None:
        shells, self._shells = self._shells, {}
        for shell in shells.values():
            shell.close()


class Services(Protocol):
    """What handlers, the planner and the operations may use to reach the world."""

    @property
    def settings(self) -> Settings: ...

    @property
    def runpod(self) -> RunpodApi: ...

    @property
    def hub(self) -> HubClient: ...

    @property
    def shells(self) -> ShellPool: ...

    @property
    def owner(self) -> str:
        """This installation's id (THINNKA_OWNER on every pod it creates)."""
        ...


class LiveServices:
    """The real clients, each made on first use from ``settings``."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store
        self.shells = ShellPool()

    @cached_property
    def runpod(self) -> RunpodApi:
        key = self.settings.runpod_api_key
        if self.settings.runpod_api == "graphql":
            from thinnka.clients.runpod.graphql import GraphQLRunpod

            return GraphQLRunpod(self.settings.runpod_api_base_url, key.reveal() if key else None)
        from thinnka.clients.runpod.rest import RestRunpod

        return RestRunpod(self.settings.runpod_api_base_url, key.reveal() if key else None)

    @cached_property
    def hub(self) -> HubClient:
        from thinnka.clients.hub import HubClient

        token = self.settings.hf_token
        return HubClient(
            endpoint=self.settings.hf_endpoint, token=token.reveal() if token else None
        )

    @cached_property
    def owner(self) -> str:
        """This installation's id (THINNKA_OWNER on every pod it creates)."""
        if self.store is None:
            raise RuntimeError("no store: the installation id lives in the database")
        return self.store.installation_id()
