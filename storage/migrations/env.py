"""Alembic environment: migrations run against the URL the bot was configured with."""

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

# Imported for the tables they register on SQLModel.metadata.
from storage import (  # noqa: F401
    locks,
    models,
    models_alerts,
    models_backfill,
    models_digest,
    models_github_app,
    models_slack,
    outbox,
)
from storage.db import create_db_engine

config = context.config
target_metadata = SQLModel.metadata

# Any fixed number works; replicas starting together take this lock so one migrates at a time.
MIGRATION_LOCK_ID = 0x72656C62


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url is not None and url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    engine = create_db_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot alter columns or constraints in place; batch mode copies the table.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Held until the migration transaction ends; a second replica waits here and
                # then finds the schema already current. SQLite's IMMEDIATE transactions
                # serialise writers already.
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
