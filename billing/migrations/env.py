"""Alembic environment: `vigil db upgrade` passes the connection in."""

from __future__ import annotations

from alembic import context

from billing.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `vigil db upgrade`")
context.configure(connection=connection, target_metadata=target_metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
