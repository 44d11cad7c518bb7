"""GitHub App: PR build-profile comments, repository configuration, installation API state

Revision ID: 0005
Revises: 0001
Create Date: 2026-12-04
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0005"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "github_pr_comment",
        sa.Column("repo", sa.String(length=200), nullable=False),
        sa.Column("pr_number", sa.Integer(), nullable=False),
        sa.Column("installation_id", BIG_ID, nullable=True),
        sa.Column("head_sha", sa.String(length=64), nullable=True),
        sa.Column("head_repository", sa.String(length=200), nullable=True),
        sa.Column("base_ref", sa.String(length=255), nullable=True),
        sa.Column("head_seen_at", UTC, nullable=True),
        sa.Column("comment_id", BIG_ID, nullable=True),
        sa.Column("body_digest", sa.String(length=64), nullable=True),
        sa.Column("lock_owner", sa.String(length=100), nullable=True),
        sa.Column("lock_until", UTC, nullable=True),
        sa.Column("refreshed_at", UTC, nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("repo", "pr_number", name="pk_github_pr_comment"),
    )
    op.create_index(
        "ix_github_pr_comment_installation_id", "github_pr_comment", ["installation_id"], unique=False
    )

    op.create_table(
        "github_repo_config",
        sa.Column("repo", sa.String(length=200), nullable=False),
        sa.Column("installation_id", BIG_ID, nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("blob_sha", sa.String(length=64), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("error_at", UTC, nullable=True),
        sa.Column("fetched_at", UTC, nullable=True),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("repo", name="pk_github_repo_config"),
    )

    op.create_table(
        "github_installation_state",
        sa.Column("installation_id", BIG_ID, nullable=False),
        sa.Column("token_status", sa.String(length=20), nullable=False),
        sa.Column("token_error", sa.Text(), nullable=True),
        sa.Column("token_failed_at", UTC, nullable=True),
        sa.Column("missing_permissions", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("installation_id", name="pk_github_installation_state"),
    )


def downgrade() -> None:
    op.drop_table("github_installation_state")
    op.drop_table("github_repo_config")
    op.drop_index("ix_github_pr_comment_installation_id", table_name="github_pr_comment")
    op.drop_table("github_pr_comment")
