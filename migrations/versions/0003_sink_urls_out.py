"""Sink URLs out of the database: runs.options no longer holds webhook URLs.

``--progress-url`` and ``--discord-webhook-url`` were stored with the other
options, and a Discord webhook's URL is its token. From this revision the
options keep only which sinks were given by flag (``flag_sinks``); this
migration scrubs the URLs already stored. A run still in flight at the upgrade
delivers to those sinks again once ``resume`` is given the flag (or .env the
setting).

Revision ID: 0003_sink_urls_out
Revises: 0002_outbox
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_sink_urls_out"
down_revision = "0002_outbox"
branch_labels = None
depends_on = None

_SINK_OPTIONS = {"progress_url": "webhook", "discord_webhook_url": "discord"}


def upgrade() -> None:
    runs = sa.table("runs", sa.column("id", sa.String), sa.column("options", sa.JSON))
    connection = op.get_bind()
    for run_id, options in connection.execute(sa.select(runs.c.id, runs.c.options)).all():
        if not isinstance(options, dict) or not any(options.get(k) for k in _SINK_OPTIONS):
            continue
        given = set(options.get("flag_sinks") or [])
        scrubbed = dict(options)
        for key, name in _SINK_OPTIONS.items():
            if scrubbed.get(key):
                given.add(name)
            scrubbed[key] = None
        scrubbed["flag_sinks"] = sorted(given)
        connection.execute(runs.update().where(runs.c.id == run_id).values(options=scrubbed))


def downgrade() -> None:
    """Nothing to restore: the URLs are gone on purpose."""
