"""Alembic environment for thinnka.

thinnka runs migrations in code (``thinnka.store.db.migrate``) on a connection
it passes in ``config.attributes["connection"]``, already inside the
transaction that holds the migration lock (see that module). There is no
alembic.ini and no ``fileConfig`` call, so Alembic never replaces thinnka's
logging setup.
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
    # SQLite can only ALTER through batch copy-and-move; PostgreSQL alters in place.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
