"""The remote services a run talks to, built lazily from settings.

Handlers reach Runpod, the Hub and the pod only through this object, so a
test (or a future transport) can swap any of them.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from thinnka.settings import Settings

if TYPE_CHECKING:
    from thinnka.clients.hub import HubClient
    from thinnka.clients.runpod import RunpodApi
    from thinnka.store import Store

__all__ = ["Services"]


class Services:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store

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
