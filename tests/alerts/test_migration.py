"""The alert tables' migration: it matches the models, and it downgrades and upgrades again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import storage.models_alerts  # noqa: F401  (registers the alert tables)
from storage.db import create_db_engine, downgrade_database, upgrade_database

TABLES = {
    "alert_incident",
    "alert_failure",
    "alert_post",
    "alert_silence",
    "alert_route",
    "alert_user_mapping",
    "alert_subscription_pause",
}


def alert_differences(database_url: str) -> list[str]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    return [
        str(difference)
        for difference in differences
        if any(f"'{table}'" in str(difference) for table in TABLES)
    ]


def test_migration_matches_models(database_url: str) -> None:
    assert alert_differences(database_url) == []


def test_downgrade_then_upgrade(database_url: str) -> None:
    downgrade_database(database_url, "0007@0001")
    engine = create_db_engine(database_url)
    try:
        assert TABLES.isdisjoint(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    upgrade_database(database_url)
    assert alert_differences(database_url) == []
