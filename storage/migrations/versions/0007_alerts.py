"""failure alerting: incidents, failures, Slack posts, silences, routes, user mappings, pauses

Revision ID: 0007
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0007"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_key", sa.String(length=800), nullable=False),
        sa.Column("open_key", sa.String(length=800), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("repo", sa.String(length=200), nullable=False),
        sa.Column("workflow", sa.String(length=255), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("installation_id", BIG_ID, nullable=True),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("opened_at", UTC, nullable=False),
        sa.Column("last_failure_at", UTC, nullable=True),
        sa.Column("last_failure_started_at", UTC, nullable=True),
        sa.Column("resolved_at", UTC, nullable=True),
        sa.Column("resolved_run_id", BIG_ID, nullable=True),
        sa.Column("resolved_attempt", sa.Integer(), nullable=True),
        sa.Column("recovery_s", sa.Float(), nullable=True),
        sa.Column("reminder_count", sa.Integer(), nullable=False),
        sa.Column("last_reminded_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_incident"),
        sa.UniqueConstraint("open_key", name="uq_alert_incident_open_key"),
    )
    op.create_index(
        "ix_alert_incident_key_status", "alert_incident", ["incident_key", "status"], unique=False
    )
    op.create_index(
        "ix_alert_incident_status_opened", "alert_incident", ["status", "opened_at"], unique=False
    )

    op.create_table(
        "alert_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.String(length=100), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("repo", sa.String(length=200), nullable=False),
        sa.Column("workflow", sa.String(length=255), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("run_id", BIG_ID, nullable=True),
        sa.Column("run_attempt", sa.Integer(), nullable=True),
        sa.Column("deployment_id", BIG_ID, nullable=True),
        sa.Column("environment", sa.String(length=255), nullable=True),
        sa.Column("head_sha", sa.String(length=64), nullable=True),
        sa.Column("conclusion", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=True),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("occurred_at", UTC, nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("author_email", sa.String(length=320), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("silence_id", sa.Integer(), nullable=True),
        sa.Column("flaky", sa.Boolean(), nullable=False),
        sa.Column("flaky_run_id", BIG_ID, nullable=True),
        sa.Column("flaky_attempt", sa.Integer(), nullable=True),
        sa.Column("flaky_marked_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["alert_incident.id"],
            name="fk_alert_failure_incident_id_alert_incident",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alert_failure"),
        sa.UniqueConstraint("source_key", name="uq_alert_failure_source_key"),
    )
    op.create_index("ix_alert_failure_incident_id", "alert_failure", ["incident_id"], unique=False)
    op.create_index(
        "ix_alert_failure_repo_sha", "alert_failure", ["repo", "head_sha"], unique=False
    )

    op.create_table(
        "alert_post",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=100), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.Column("route_id", sa.Integer(), nullable=True),
        sa.Column("ts", sa.String(length=32), nullable=True),
        sa.Column("posted_channel", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["alert_incident.id"],
            name="fk_alert_post_incident_id_alert_incident",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alert_post"),
        sa.UniqueConstraint(
            "incident_id",
            "team_id",
            "channel_id",
            name="uq_alert_post_incident_id_team_id_channel_id",
        ),
    )

    op.create_table(
        "alert_silence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("repo", sa.String(length=200), nullable=False),
        sa.Column("workflow", sa.String(length=255), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("ended_at", UTC, nullable=True),
        sa.Column("ended_by", sa.String(length=32), nullable=True),
        sa.Column("suppressed_count", sa.Integer(), nullable=False),
        sa.Column("last_suppressed_at", UTC, nullable=True),
        sa.Column("last_suppressed_run_id", BIG_ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_silence"),
    )
    op.create_index(
        "ix_alert_silence_team_repo", "alert_silence", ["team_id", "repo"], unique=False
    )

    op.create_table(
        "alert_route",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=100), nullable=False),
        sa.Column("repos", sa.Text(), nullable=False),
        sa.Column("workflows", sa.Text(), nullable=False),
        sa.Column("branches", sa.Text(), nullable=False),
        sa.Column("exclude_repos", sa.Text(), nullable=False),
        sa.Column("exclude_workflows", sa.Text(), nullable=False),
        sa.Column("exclude_branches", sa.Text(), nullable=False),
        sa.Column("min_severity", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=True),
        sa.Column("include_cancelled", sa.Boolean(), nullable=False),
        sa.Column("paused_reason", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_route"),
    )

    op.create_table(
        "alert_user_mapping",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("github_login", sa.String(length=100), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("slack_user_id", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_user_mapping"),
        sa.UniqueConstraint(
            "team_id", "github_login", name="uq_alert_user_mapping_team_id_github_login"
        ),
        sa.UniqueConstraint("team_id", "email", name="uq_alert_user_mapping_team_id_email"),
    )

    op.create_table(
        "alert_subscription_pause",
        sa.Column("subscription_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("paused_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name="pk_alert_subscription_pause"),
    )


def downgrade() -> None:
    op.drop_table("alert_subscription_pause")
    op.drop_table("alert_user_mapping")
    op.drop_table("alert_route")
    op.drop_index("ix_alert_silence_team_repo", table_name="alert_silence")
    op.drop_table("alert_silence")
    op.drop_table("alert_post")
    op.drop_index("ix_alert_failure_repo_sha", table_name="alert_failure")
    op.drop_index("ix_alert_failure_incident_id", table_name="alert_failure")
    op.drop_table("alert_failure")
    op.drop_index("ix_alert_incident_status_opened", table_name="alert_incident")
    op.drop_index("ix_alert_incident_key_status", table_name="alert_incident")
    op.drop_table("alert_incident")
