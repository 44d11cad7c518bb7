"""Tables behind the Python API: daily metric rollups, release dashboards and alerts.

Times are UTC; durations are seconds.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Date, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.models import big_id, utc_field


class MetricRollup(SQLModel, table=True):
    """Count, sum, sum of squares, min and max of one metric type's points in one repo on one UTC day.

    `repo` is '' for points without a repo tag, so the unique key has no NULLs.
    """

    __tablename__ = "metric_rollup"

    id: int | None = Field(default=None, primary_key=True)
    metric_type: str = Field(max_length=40)
    repo: str = Field(default="", max_length=200)
    day: date = Field(sa_column=Column(Date, nullable=False))
    count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    total: float = Field(default=0.0)
    total_squares: float = Field(default=0.0)
    min_value: float | None = Field(default=None)
    max_value: float | None = Field(default=None)

    __table_args__ = (
        UniqueConstraint("metric_type", "repo", "day", name="uq_metric_rollup_metric_type_repo_day"),
        Index("ix_metric_rollup_type_day", "metric_type", "day"),
    )


class MetricRollupBucket(SQLModel, table=True):
    """How many points of a rollup fell into one histogram bucket (see storage.metric_rollups)."""

    __tablename__ = "metric_rollup_bucket"

    rollup_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("metric_rollup.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    bucket: int = Field(primary_key=True)
    count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class PublishStatus(str, enum.Enum):
    """Status of a release stage, and of a whole release (PARTIAL applies to a release only)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    PARTIAL = "partial"


class ReleaseDashboard(SQLModel, table=True):
    """The publish status of one version of one repository."""

    __tablename__ = "release_dashboard"

    id: int | None = Field(default=None, primary_key=True)
    repo: str = Field(default="", max_length=200)
    version: str = Field(max_length=255)
    release_id: int | None = big_id()
    created_at: datetime = utc_field(nullable=False, default_now=True)
    updated_at: datetime = utc_field(nullable=False, default_now=True, index=True)

    __table_args__ = (UniqueConstraint("repo", "version", name="uq_release_dashboard_repo_version"),)


class ReleaseStage(SQLModel, table=True):
    """One stage of a release dashboard; stages fed by webhooks carry their job's ids."""

    __tablename__ = "release_stage"

    id: int | None = Field(default=None, primary_key=True)
    dashboard_id: int = Field(
        sa_column=Column(Integer, ForeignKey("release_dashboard.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(max_length=255)
    status: str = Field(max_length=20)
    message: str = Field(default="", sa_type=Text)
    position: int = Field(default=0)
    job_id: int | None = big_id(index=True)
    run_id: int | None = big_id()
    run_attempt: int | None = Field(default=None)
    html_url: str | None = Field(default=None, max_length=500)
    started_at: datetime | None = utc_field()
    completed_at: datetime | None = utc_field()
    duration_s: float | None = Field(default=None)
    updated_at: datetime = utc_field(nullable=False, default_now=True)

    __table_args__ = (UniqueConstraint("dashboard_id", "name", name="uq_release_stage_dashboard_id_name"),)


class Alert(SQLModel, table=True):
    """An alert and the outcome of sending it; `target` names where it went, never a secret."""

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=20)
    target: str | None = Field(default=None, max_length=500)
    severity: str = Field(max_length=20)
    title: str = Field(sa_type=Text)
    message: str = Field(sa_type=Text)
    status: str = Field(default="pending", max_length=20)
    attempts: int = Field(default=0)
    error: str | None = Field(default=None, sa_type=Text)
    response: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = utc_field(nullable=False, default_now=True)
    updated_at: datetime = utc_field(nullable=False, default_now=True)
    sent_at: datetime | None = utc_field()

    __table_args__ = (
        Index("ix_alert_channel_id", "channel", "id"),
        Index("ix_alert_status_id", "status", "id"),
    )
