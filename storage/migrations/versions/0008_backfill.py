"""backfill progress: page cursor per backfill and the runs it recorded

Revision ID: 0008
Revises: 0001
Create Date: 2026-12-05
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0008"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# GitHub ids need 64 bits; SQLite's INTEGER already stores up to 8 bytes.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "backfill_progress",
        sa.Column("repo", sa.String(length=200), nullable=False),
        sa.Column("since", sa.String(length=10), nullable=False),
        sa.Column("next_page", sa.Integer(), nullable=False),
        sa.Column("total_count", sa.Integer(), nullable=True),
        sa.Column("installation_id", BIG_ID, nullable=True),
        sa.Column("started_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("repo", "since", name=op.f("pk_backfill_progress")),
    )
    op.create_table(
        "backfill_run",
        sa.Column("repo", sa.String(length=200), nullable=False),
        sa.Column("run_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("run_attempt", sa.Integer(), nullable=False),
        sa.Column("recorded_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("repo", "run_id", name=op.f("pk_backfill_run")),
    )


def downgrade() -> None:
    op.drop_table("backfill_run")
    op.drop_table("backfill_progress")
