"""Alembic environment for thinnka.

thinnka runs migrations in code (``thinnka.store.db.migrate``) on a connection
it passes in ``config.attributes["connection"]``. There is no alembic.ini and
no ``fileConfig`` call, so Alembic never replaces thinnka's logging setup.
"""

from __future__ import annotations

from alembic import context

from thinnka.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - thinnka always passes one
    raise RuntimeError("thinnka migrations run through thinnka.store.db.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite can only ALTER through batch copy-and-move
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
