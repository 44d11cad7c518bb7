"""The backfill tables' migration: it matches the models, and it downgrades and upgrades again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import storage.models_backfill  # noqa: F401  (registers the backfill tables)
from storage.db import create_db_engine, downgrade_database, upgrade_database

TABLES = {"backfill_progress", "backfill_run"}


def table_names(database_url: str) -> set[str]:
    engine = create_db_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def backfill_differences(database_url: str) -> list[str]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    return [str(difference) for difference in differences if any(f"'{table}'" in str(difference) for table in TABLES)]


def test_migration_matches_models(database_url: str) -> None:
    assert backfill_differences(database_url) == []


def test_migration_downgrade_then_upgrade(database_url: str) -> None:
    downgrade_database(database_url, "0008@0001")
    assert TABLES.isdisjoint(table_names(database_url))

    upgrade_database(database_url)

    assert TABLES <= table_names(database_url)
    assert backfill_differences(database_url) == []
