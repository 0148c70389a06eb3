"""Alembic environment: migrations run on the connection the service hands over (see database.migrate)."""

from __future__ import annotations

from alembic import context

from backend.db.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the service's programmatic upgrade is supported
    raise RuntimeError("run migrations through backend.db.database.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
