"""SQLModel tables of release-bot.

Facts from GitHub are keyed by GitHub's own ids (installation, repository, run and attempt,
job, step number, pull request, release, deployment), so the same fact arriving twice, under
one delivery id or two, updates one row. Times are UTC; durations are seconds.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, MetaData, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import BigInt, UTCDateTime, utc_now

# Named constraints let Alembic alter and drop them later, on SQLite too (batch mode).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utc_field(*, nullable: bool = True, index: bool = False, default_now: bool = False) -> Any:
    """Declare a UTC timestamp column."""
    if default_now:
        return Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=nullable, index=index)
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def big_id(*, primary_key: bool = False, index: bool = False, nullable: bool = True) -> Any:
    """Declare a 64-bit integer column for a GitHub id (job ids already pass 2**31)."""
    if primary_key:
        return Field(
            default=None,
            sa_type=BigInt,
            primary_key=True,
            nullable=False,
            sa_column_kwargs={"autoincrement": False},
        )
    return Field(default=None, sa_type=BigInt, index=index, nullable=nullable)


class DeliveryStatus(str, enum.Enum):
    """Where a stored webhook delivery is in its processing."""

    PENDING = "pending"
    DONE = "done"
    IGNORED = "ignored"
    INVALID = "invalid"
    FAILED = "failed"


class Delivery(SQLModel, table=True):
    """A verified webhook delivery, stored before it is acknowledged."""

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(max_length=100, unique=True)
    event: str = Field(max_length=100)
    action: str | None = Field(default=None, max_length=100)
    installation_id: int | None = big_id()
    repository: str | None = Field(default=None, max_length=200)
    headers: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    body: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = utc_field(nullable=False, default_now=True)
    status: str = Field(default=DeliveryStatus.PENDING.value, max_length=20)
    processed_at: datetime | None = utc_field()
    attempts: int = Field(default=0)
    error: str | None = Field(default=None, sa_type=Text)

    __table_args__ = (Index("ix_delivery_status_id", "status", "id"),)


class AppState(SQLModel, table=True):
    """A small key-value store for values the bot generates itself, such as the webhook secret."""

    __tablename__ = "app_state"

    key: str = Field(primary_key=True, max_length=100)
    value: str = Field(sa_type=Text)
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class Installation(SQLModel, table=True):
    """A GitHub App installation on an account."""

    id: int = big_id(primary_key=True)
    account_login: str | None = Field(default=None, max_length=100)
    account_type: str | None = Field(default=None, max_length=40)
    status: str = Field(default="active", max_length=20)
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class Repository(SQLModel, table=True):
    """A repository the bot has seen, with its installation."""

    id: int = big_id(primary_key=True)
    full_name: str = Field(max_length=200, index=True)
    installation_id: int | None = big_id(index=True)
    default_branch: str | None = Field(default=None, max_length=255)
    private: bool = Field(default=False)
    removed: bool = Field(default=False)
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class WorkflowRun(SQLModel, table=True):
    """A workflow run; its attempts are in RunAttempt."""

    __tablename__ = "workflow_run"

    id: int = big_id(primary_key=True)
    repo: str = Field(max_length=200, index=True)
    repository_id: int | None = big_id()
    installation_id: int | None = big_id()
    workflow_id: int | None = big_id()
    workflow_name: str | None = Field(default=None, max_length=255)
    workflow_path: str | None = Field(default=None, max_length=500)
    run_number: int | None = Field(default=None)
    event: str | None = Field(default=None, max_length=100)
    head_branch: str | None = Field(default=None, max_length=255)
    head_sha: str | None = Field(default=None, max_length=64, index=True)
    head_repository: str | None = Field(default=None, max_length=200)
    display_title: str | None = Field(default=None, sa_type=Text)
    actor: str | None = Field(default=None, max_length=100)
    html_url: str | None = Field(default=None, max_length=500)
    created_at: datetime | None = utc_field(index=True)
    latest_attempt: int = Field(default=1)
    pull_request_numbers: list[int] = Field(default_factory=list, sa_type=JSON)
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class RunAttempt(SQLModel, table=True):
    """One attempt of a workflow run; a re-run is a new attempt of the same run."""

    __tablename__ = "run_attempt"

    run_id: int = Field(sa_type=BigInt, primary_key=True)
    attempt: int = Field(primary_key=True)
    status: str = Field(default="queued", max_length=40)
    conclusion: str | None = Field(default=None, max_length=40)
    triggering_actor: str | None = Field(default=None, max_length=100)
    run_started_at: datetime | None = utc_field()
    completed_at: datetime | None = utc_field()
    duration_s: float | None = Field(default=None)
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class Job(SQLModel, table=True):
    """A job of a run attempt, keyed by GitHub's job id (names repeat within a run)."""

    id: int = big_id(primary_key=True)
    run_id: int = Field(sa_type=BigInt, index=True)
    run_attempt: int = Field(default=1)
    repo: str = Field(max_length=200, index=True)
    workflow_name: str | None = Field(default=None, max_length=255)
    head_branch: str | None = Field(default=None, max_length=255)
    head_sha: str | None = Field(default=None, max_length=64)
    name: str = Field(max_length=1000)
    stage: str = Field(default="build", max_length=20)
    labels: list[str] = Field(default_factory=list, sa_type=JSON)
    runner_name: str | None = Field(default=None, max_length=255)
    runner_group_name: str | None = Field(default=None, max_length=255)
    status: str = Field(default="queued", max_length=40)
    conclusion: str | None = Field(default=None, max_length=40)
    created_at: datetime | None = utc_field()
    started_at: datetime | None = utc_field()
    completed_at: datetime | None = utc_field()
    queue_s: float | None = Field(default=None)
    duration_s: float | None = Field(default=None)
    html_url: str | None = Field(default=None, max_length=500)
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class Step(SQLModel, table=True):
    """A step of a job, keyed by its number (the same action can run twice in a job)."""

    job_id: int = Field(sa_type=BigInt, primary_key=True)
    number: int = Field(primary_key=True)
    name: str = Field(sa_type=Text)
    status: str | None = Field(default=None, max_length=40)
    conclusion: str | None = Field(default=None, max_length=40)
    started_at: datetime | None = utc_field()
    completed_at: datetime | None = utc_field()
    duration_s: float | None = Field(default=None)


class PullRequest(SQLModel, table=True):
    """A pull request's head, stored so runs from forks can be matched by head SHA and repo."""

    __tablename__ = "pull_request"

    id: int = big_id(primary_key=True)
    repo: str = Field(max_length=200, index=True)
    number: int
    state: str | None = Field(default=None, max_length=20)
    title: str | None = Field(default=None, sa_type=Text)
    head_sha: str | None = Field(default=None, max_length=64, index=True)
    head_ref: str | None = Field(default=None, max_length=255)
    head_repository: str | None = Field(default=None, max_length=200)
    base_ref: str | None = Field(default=None, max_length=255)
    html_url: str | None = Field(default=None, max_length=500)
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class Release(SQLModel, table=True):
    """A GitHub release and its latest known state."""

    id: int = big_id(primary_key=True)
    repo: str = Field(max_length=200, index=True)
    tag_name: str | None = Field(default=None, max_length=255)
    name: str | None = Field(default=None, sa_type=Text)
    draft: bool = Field(default=False)
    prerelease: bool = Field(default=False)
    state: str = Field(default="created", max_length=20)
    author: str | None = Field(default=None, max_length=100)
    html_url: str | None = Field(default=None, max_length=500)
    created_at: datetime | None = utc_field()
    published_at: datetime | None = utc_field()
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class Deployment(SQLModel, table=True):
    """A deployment and its latest status; its duration runs from creation to a final status."""

    id: int = big_id(primary_key=True)
    repo: str = Field(max_length=200, index=True)
    environment: str | None = Field(default=None, max_length=255)
    ref: str | None = Field(default=None, max_length=255)
    sha: str | None = Field(default=None, max_length=64)
    task: str | None = Field(default=None, max_length=100)
    creator: str | None = Field(default=None, max_length=100)
    created_at: datetime | None = utc_field()
    state: str | None = Field(default=None, max_length=20)
    state_at: datetime | None = utc_field()
    duration_s: float | None = Field(default=None)
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class CheckSuite(SQLModel, table=True):
    """A check suite's conclusion for a commit."""

    __tablename__ = "check_suite"

    id: int = big_id(primary_key=True)
    repo: str = Field(max_length=200, index=True)
    head_sha: str | None = Field(default=None, max_length=64)
    head_branch: str | None = Field(default=None, max_length=255)
    app_slug: str | None = Field(default=None, max_length=100)
    status: str | None = Field(default=None, max_length=40)
    conclusion: str | None = Field(default=None, max_length=40)
    updated_at: datetime = utc_field(nullable=False, default_now=True)


class Tag(SQLModel, table=True):
    """A tag pushed to a repository; deleted tags are kept with `deleted` set."""

    repo: str = Field(max_length=200, primary_key=True)
    name: str = Field(max_length=255, primary_key=True)
    sha: str | None = Field(default=None, max_length=64)
    pusher: str | None = Field(default=None, max_length=100)
    pushed_at: datetime | None = utc_field()
    deleted: bool = Field(default=False)


class MetricType(str, enum.Enum):
    """Kind of a metric point, as in the release guide's MetricsTracker."""

    BUILD_TIME = "build_time"
    TEST_DURATION = "test_duration"
    PUBLISH_TIME = "publish_time"
    DEPLOYMENT_TIME = "deployment_time"
    QUEUE_TIME = "queue_time"
    CUSTOM = "custom"


class Metric(SQLModel, table=True):
    """One metric point.

    Points derived from GitHub facts carry a `source_key` (such as `build_time:run:30004:2`)
    so a fact processed twice updates its point instead of adding a second one. The common
    tags are columns so statistics can filter on an index; all tags are also in `tags`.
    """

    id: int | None = Field(default=None, sa_type=BigInt, primary_key=True)
    name: str = Field(max_length=200)
    metric_type: str = Field(max_length=40)
    value: float
    timestamp: datetime = utc_field(nullable=False, default_now=True)
    repo: str | None = Field(default=None, max_length=200)
    workflow: str | None = Field(default=None, max_length=255)
    branch: str | None = Field(default=None, max_length=255)
    conclusion: str | None = Field(default=None, max_length=40)
    tags: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    source_key: str | None = Field(default=None, max_length=200)
    # Histogram bucket of `value` (storage.metric_rollups.value_bucket), set by upsert_metric.
    value_bucket: int | None = Field(default=None)

    __table_args__ = (
        UniqueConstraint("source_key"),
        Index("ix_metric_type_repo_time", "metric_type", "repo", "timestamp"),
        Index("ix_metric_type_time", "metric_type", "timestamp"),
        # Covers the statistics queries, so they read the index and never the table.
        Index(
            "ix_metric_type_repo_time_value",
            "metric_type",
            "repo",
            "timestamp",
            "value",
            "value_bucket",
        ),
    )


# The rollup, release dashboard and alert tables, and the Slack tables, live in modules of their
# own. Importing them here registers them on the metadata.
from storage import models_release as models_release  # noqa: E402,F401
from storage import models_slack as models_slack  # noqa: E402,F401
