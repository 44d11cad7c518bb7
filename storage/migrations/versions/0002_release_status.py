"""metric rollups and histogram buckets, release dashboards and stages, alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

Adds `metric.value_bucket` (the histogram bucket of each point's value) with a covering index,
and fills it and the daily rollups for points stored before this revision. The bucket function
below is a frozen copy of `storage.metric_rollups.value_bucket`: a migration must keep computing
what the schema meant at this revision even if that module changes later.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

RELATIVE_ACCURACY = 0.005
LOG_GAMMA = math.log((1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY))
MIN_MAGNITUDE = 1e-9
BUCKET_OFFSET = math.ceil(-math.log(MIN_MAGNITUDE) / LOG_GAMMA) + 1
BACKFILL_BATCH = 10_000


def value_bucket(value: float) -> int:
    magnitude = abs(value)
    if magnitude < MIN_MAGNITUDE:
        return 0
    index = math.ceil(math.log(magnitude) / LOG_GAMMA) + BUCKET_OFFSET
    return index if value > 0 else -index


def upgrade() -> None:
    with op.batch_alter_table("metric", schema=None) as batch_op:
        batch_op.add_column(sa.Column("value_bucket", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_metric_type_repo_time_value",
            ["metric_type", "repo", "timestamp", "value", "value_bucket"],
            unique=False,
        )

    op.create_table(
        "metric_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("metric_type", sa.String(length=40), nullable=False),
        sa.Column("repo", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("total_squares", sa.Float(), nullable=False),
        sa.Column("min_value", sa.Float(), nullable=True),
        sa.Column("max_value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_metric_rollup"),
        sa.UniqueConstraint("metric_type", "repo", "day", name="uq_metric_rollup_metric_type_repo_day"),
    )
    op.create_index("ix_metric_rollup_type_day", "metric_rollup", ["metric_type", "day"], unique=False)

    op.create_table(
        "metric_rollup_bucket",
        sa.Column("rollup_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollup_id"],
            ["metric_rollup.id"],
            name="fk_metric_rollup_bucket_rollup_id_metric_rollup",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rollup_id", "bucket", name="pk_metric_rollup_bucket"),
    )

    op.create_table(
        "release_dashboard",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("release_id", BIG_ID, nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_release_dashboard"),
        sa.UniqueConstraint("repo", "version", name="uq_release_dashboard_repo_version"),
    )
    op.create_index("ix_release_dashboard_updated_at", "release_dashboard", ["updated_at"], unique=False)

    op.create_table(
        "release_stage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dashboard_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("job_id", BIG_ID, nullable=True),
        sa.Column("run_id", BIG_ID, nullable=True),
        sa.Column("run_attempt", sa.Integer(), nullable=True),
        sa.Column("html_url", sa.String(length=500), nullable=True),
        sa.Column("started_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["release_dashboard.id"],
            name="fk_release_stage_dashboard_id_release_dashboard",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_release_stage"),
        sa.UniqueConstraint("dashboard_id", "name", name="uq_release_stage_dashboard_id_name"),
    )
    op.create_index("ix_release_stage_job_id", "release_stage", ["job_id"], unique=False)

    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=True),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert"),
    )
    op.create_index("ix_alert_channel_id", "alert", ["channel", "id"], unique=False)
    op.create_index("ix_alert_status_id", "alert", ["status", "id"], unique=False)

    backfill_metric_rollups()


def backfill_metric_rollups() -> None:
    """Fill `value_bucket` and the daily rollups for points stored before this revision."""
    connection = op.get_bind()
    metric = sa.table(
        "metric",
        sa.column("id", sa.Integer()),
        sa.column("value", sa.Float()),
        sa.column("value_bucket", sa.Integer()),
    )
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(metric.c.id, metric.c.value)
            .where(metric.c.id > last_id)
            .order_by(metric.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            metric.update().where(metric.c.id == sa.bindparam("row_id")).values(value_bucket=sa.bindparam("bucket")),
            [{"row_id": row.id, "bucket": value_bucket(row.value)} for row in rows],
        )
        last_id = rows[-1].id

    if connection.dialect.name == "postgresql":
        day = "(m.timestamp AT TIME ZONE 'UTC')::date"
    else:
        day = "date(m.timestamp)"
    connection.execute(
        sa.text(
            "INSERT INTO metric_rollup (metric_type, repo, day, count, total, total_squares, min_value, max_value) "
            f"SELECT m.metric_type, COALESCE(m.repo, ''), {day}, COUNT(*), SUM(m.value), "
            "SUM(m.value * m.value), MIN(m.value), MAX(m.value) "
            f"FROM metric m GROUP BY m.metric_type, COALESCE(m.repo, ''), {day}"
        )
    )
    connection.execute(
        sa.text(
            "INSERT INTO metric_rollup_bucket (rollup_id, bucket, count) "
            "SELECT r.id, m.value_bucket, COUNT(*) FROM metric m JOIN metric_rollup r "
            f"ON r.metric_type = m.metric_type AND r.repo = COALESCE(m.repo, '') AND r.day = {day} "
            "GROUP BY r.id, m.value_bucket"
        )
    )


def downgrade() -> None:
    op.drop_index("ix_alert_status_id", table_name="alert")
    op.drop_index("ix_alert_channel_id", table_name="alert")
    op.drop_table("alert")
    op.drop_index("ix_release_stage_job_id", table_name="release_stage")
    op.drop_table("release_stage")
    op.drop_index("ix_release_dashboard_updated_at", table_name="release_dashboard")
    op.drop_table("release_dashboard")
    op.drop_table("metric_rollup_bucket")
    op.drop_index("ix_metric_rollup_type_day", table_name="metric_rollup")
    op.drop_table("metric_rollup")
    with op.batch_alter_table("metric", schema=None) as batch_op:
        batch_op.drop_index("ix_metric_type_repo_time_value")
        batch_op.drop_column("value_bucket")
