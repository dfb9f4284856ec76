"""The migrations and the models describe the same schema, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from billing import schema
from billing.models import Base


def test_migrations_match_the_models(db):
    assert schema.current(db) == schema.head()
    with db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(db):
    schema.upgrade(db)
    assert schema.current(db) == schema.head()
