"""The migrations build exactly the tables the models declare (a column added to one
and not the other fails here, before it fails on a user's database)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from autodl.service.db import Database
from autodl.service.models import Base


def test_migrations_match_the_models(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        # Only what changes the schema: added or removed tables and columns.
        kinds = {"add_table", "remove_table", "add_column", "remove_column"}
        changes = [d for d in diff if isinstance(d, tuple) and d[0] in kinds]
        assert changes == [], changes
    finally:
        db.dispose()
