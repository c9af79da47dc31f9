"""Persistence of runs: SQLite by default, PostgreSQL by ``THINNKA_DB_URL``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from thinnka.store.repo import EventRecord, RunRecord, Store

if TYPE_CHECKING:
    from thinnka.settings import Settings

__all__ = ["EventRecord", "RunRecord", "Store", "open_store"]


def open_store(settings: Settings, *, read_only: bool = False) -> Store:
    """Open (and create or upgrade) the database the settings point at; ``read_only``:
    see ``thinnka.store.db.open_engine``."""
    from thinnka.store.db import open_engine

    engine = open_engine(settings.database_url, settings.state_dir, read_only=read_only)
    return Store(engine, secrets=settings.secrets())
