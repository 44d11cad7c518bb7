"""The Slack migration: its tables and named constraints, matching the models, up and down alone."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, inspect
from sqlmodel import SQLModel

from storage import models  # noqa: F401  (registers every table)
from storage.db import alembic_config, create_db_engine

SLACK_TABLES = {
    "slack_link",
    "slack_subscription",
    "slack_status_message",
    "slack_installations",
    "slack_bots",
    "slack_oauth_states",
}


def slack_tables(database_url: str) -> set[str]:
    engine = create_db_engine(database_url)
    try:
        return {name for name in inspect(engine).get_table_names() if name.startswith("slack_")}
    finally:
        engine.dispose()


def test_slack_tables_match_models(database_url: str) -> None:
    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [
            difference
            for difference in compare_metadata(context, SQLModel.metadata)
            if "slack_" in str(difference)
        ]
    engine.dispose()
    assert differences == []


def test_slack_constraints_named(database_url: str) -> None:
    engine = create_db_engine(database_url)
    inspector = inspect(engine)
    assert [item["name"] for item in inspector.get_unique_constraints("slack_subscription")] == [
        "uq_slack_subscription_team_id_channel_id_repo_branch_workflow"
    ]
    # PostgreSQL also lists the index behind a unique constraint, so only presence is checked.
    assert "ix_slack_link_installation_id" in {
        item["name"] for item in inspector.get_indexes("slack_link")
    }
    assert "slack_bots_idx" in {item["name"] for item in inspector.get_indexes("slack_bots")}
    engine.dispose()


def test_slack_branch_down_and_up(database_url: str) -> None:
    config = alembic_config(database_url)
    assert slack_tables(database_url) == SLACK_TABLES

    command.downgrade(config, "0003@0001")
    assert slack_tables(database_url) == set()
    engine = create_db_engine(database_url)
    assert "workflow_run" in inspect(engine).get_table_names()
    engine.dispose()

    command.upgrade(config, "heads")
    assert slack_tables(database_url) == SLACK_TABLES


def describe_table(table: Table) -> tuple[list[tuple[object, ...]], set[tuple[object, ...]]]:
    columns = [
        (
            column.name,
            repr(column.type),
            column.nullable,
            column.primary_key,
            column.autoincrement,
            column.default is not None,
        )
        for column in table.columns
    ]
    indexes = {(index.name, tuple(column.name for column in index.columns)) for index in table.indexes}
    return columns, indexes


def test_store_tables_match_slack_sdk() -> None:
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

    metadata = MetaData()
    expected = {
        "slack_installations": SQLAlchemyInstallationStore.build_installations_table(
            metadata, "slack_installations"
        ),
        "slack_bots": SQLAlchemyInstallationStore.build_bots_table(metadata, "slack_bots"),
        "slack_oauth_states": SQLAlchemyOAuthStateStore.build_oauth_states_table(
            metadata, "slack_oauth_states"
        ),
    }
    for name, table in expected.items():
        assert describe_table(SQLModel.metadata.tables[name]) == describe_table(table), name
