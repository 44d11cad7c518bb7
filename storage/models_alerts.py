"""SQLModel tables of failure alerting: incidents, their failures and Slack posts, silences,
routing rules, GitHub-to-Slack user mappings and paused subscriptions.

An incident groups the failures of one key (repository, workflow and branch by default)
from the first failure until the workflow passes again. Each channel that hears about it
gets one root message (`alert_post`); later failures, the resolution and reminders go to
that message's thread. Times are UTC; durations are seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.models import big_id, utc_field

INCIDENT_OPEN = "open"
INCIDENT_RESOLVED = "resolved"


class AlertIncident(SQLModel, table=True):
    """A run of failures of one incident key, open until the workflow passes again.

    `open_key` equals `incident_key` while the incident is open and is NULL once it is
    resolved, so the unique constraint allows one open incident per key and any number of
    resolved ones, on SQLite and PostgreSQL alike.
    """

    __tablename__ = "alert_incident"

    id: int | None = Field(default=None, primary_key=True)
    incident_key: str = Field(max_length=800)
    open_key: str | None = Field(default=None, max_length=800)
    kind: str = Field(default="workflow_run", max_length=20)
    repo: str = Field(max_length=200)
    workflow: str = Field(default="", max_length=255)
    branch: str = Field(default="", max_length=255)
    installation_id: int | None = big_id()
    severity: str = Field(default="error", max_length=20)
    status: str = Field(default=INCIDENT_OPEN, max_length=20)
    failure_count: int = Field(default=0)
    opened_at: datetime = utc_field(nullable=False, default_now=True)
    last_failure_at: datetime | None = utc_field()
    # Start of the newest failing run: a success of a run that started earlier is older news.
    last_failure_started_at: datetime | None = utc_field()
    resolved_at: datetime | None = utc_field()
    resolved_run_id: int | None = big_id()
    resolved_attempt: int | None = Field(default=None)
    recovery_s: float | None = Field(default=None)
    reminder_count: int = Field(default=0)
    last_reminded_at: datetime | None = utc_field()
    created_at: datetime = utc_field(nullable=False, default_now=True)
    updated_at: datetime = utc_field(nullable=False, default_now=True)

    __table_args__ = (
        UniqueConstraint("open_key", name="uq_alert_incident_open_key"),
        Index("ix_alert_incident_key_status", "incident_key", "status"),
        Index("ix_alert_incident_status_opened", "status", "opened_at"),
    )


class AlertFailure(SQLModel, table=True):
    """One failed run attempt or deployment status that alerting looked at.

    `source_key` (`run:ID:ATTEMPT` or `deployment_status:ID`) makes a redelivered event a
    no-op. `silence_id` is set when a silence held the failure back from every channel.
    `flaky` is set when the same commit passed later, on a re-run or another run.
    """

    __tablename__ = "alert_failure"

    id: int | None = Field(default=None, primary_key=True)
    source_key: str = Field(max_length=100)
    incident_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("alert_incident.id", ondelete="SET NULL"), nullable=True
        ),
    )
    repo: str = Field(max_length=200)
    workflow: str = Field(default="", max_length=255)
    branch: str = Field(default="", max_length=255)
    run_id: int | None = big_id()
    run_attempt: int | None = Field(default=None)
    deployment_id: int | None = big_id()
    environment: str | None = Field(default=None, max_length=255)
    head_sha: str | None = Field(default=None, max_length=64)
    conclusion: str = Field(max_length=40)
    severity: str = Field(default="error", max_length=20)
    stage: str | None = Field(default=None, max_length=20)
    started_at: datetime | None = utc_field()
    occurred_at: datetime = utc_field(nullable=False, default_now=True)
    actor: str | None = Field(default=None, max_length=100)
    author_email: str | None = Field(default=None, max_length=320)
    # What the message shows beyond the run: a deployment's description and log URL.
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    silence_id: int | None = Field(default=None)
    flaky: bool = Field(default=False)
    flaky_run_id: int | None = big_id()
    flaky_attempt: int | None = Field(default=None)
    flaky_marked_at: datetime | None = utc_field()
    created_at: datetime = utc_field(nullable=False, default_now=True)

    __table_args__ = (
        UniqueConstraint("source_key", name="uq_alert_failure_source_key"),
        Index("ix_alert_failure_incident_id", "incident_id"),
        Index("ix_alert_failure_repo_sha", "repo", "head_sha"),
    )


class AlertPost(SQLModel, table=True):
    """The root message of an incident in one Slack channel, whose thread gets the follow-ups.

    `ts` is the message timestamp exactly as chat.postMessage returned it, a string such as
    `1717400000.000100`; `posted_channel` is the channel id Slack returned, used for edits.
    """

    __tablename__ = "alert_post"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("alert_incident.id", ondelete="CASCADE"), nullable=False
        )
    )
    team_id: str = Field(max_length=32)
    channel_id: str = Field(max_length=100)
    subscription_id: int | None = Field(default=None)
    route_id: int | None = Field(default=None)
    ts: str | None = Field(default=None, max_length=32)
    posted_channel: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = utc_field(nullable=False, default_now=True)
    updated_at: datetime = utc_field(nullable=False, default_now=True)

    __table_args__ = (
        UniqueConstraint(
            "incident_id",
            "team_id",
            "channel_id",
            name="uq_alert_post_incident_id_team_id_channel_id",
        ),
    )


class AlertSilence(SQLModel, table=True):
    """Failures of a repository (optionally one workflow and branch) held back in one workspace.

    `workflow` and `branch` are empty strings for "any". The silence is active from
    `created_at` until `expires_at`, or until `ended_at` when someone ended it early.
    """

    __tablename__ = "alert_silence"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    repo: str = Field(max_length=200)
    workflow: str = Field(default="", max_length=255)
    branch: str = Field(default="", max_length=255)
    created_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = utc_field(nullable=False, default_now=True)
    expires_at: datetime = utc_field(nullable=False)
    ended_at: datetime | None = utc_field()
    ended_by: str | None = Field(default=None, max_length=32)
    suppressed_count: int = Field(default=0)
    last_suppressed_at: datetime | None = utc_field()
    last_suppressed_run_id: int | None = big_id()

    __table_args__ = (Index("ix_alert_silence_team_repo", "team_id", "repo"),)


class AlertRoute(SQLModel, table=True):
    """A routing rule: failures matching its globs and severity go to one Slack channel.

    The glob lists are comma-separated and case-insensitive; an empty include list matches
    everything. A rule whose `workflows` is empty follows only publish, release and deploy
    workflows and failed deployments; naming workflows follows those workflows whatever
    their stage. `severity`, when set, overrides the severity of matching failures.
    """

    __tablename__ = "alert_route"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    channel_id: str = Field(max_length=100)
    repos: str = Field(default="", sa_type=Text)
    workflows: str = Field(default="", sa_type=Text)
    branches: str = Field(default="", sa_type=Text)
    exclude_repos: str = Field(default="", sa_type=Text)
    exclude_workflows: str = Field(default="", sa_type=Text)
    exclude_branches: str = Field(default="", sa_type=Text)
    min_severity: str = Field(default="error", max_length=20)
    severity: str | None = Field(default=None, max_length=20)
    include_cancelled: bool = Field(default=False)
    paused_reason: str | None = Field(default=None, max_length=500)
    created_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = utc_field(nullable=False, default_now=True)


class AlertUserMapping(SQLModel, table=True):
    """A GitHub login or commit email and the Slack user it is in one workspace.

    Rows from configuration have `github_login`; rows from users.lookupByEmail have
    `email`, and a NULL `slack_user_id` records that the lookup found no user.
    """

    __tablename__ = "alert_user_mapping"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    github_login: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=320)
    slack_user_id: str | None = Field(default=None, max_length=32)
    source: str = Field(default="config", max_length=20)
    updated_at: datetime = utc_field(nullable=False, default_now=True)

    __table_args__ = (
        UniqueConstraint(
            "team_id", "github_login", name="uq_alert_user_mapping_team_id_github_login"
        ),
        UniqueConstraint("team_id", "email", name="uq_alert_user_mapping_team_id_email"),
    )


class AlertSubscriptionPause(SQLModel, table=True):
    """A Slack subscription that no longer gets alerts, and why (`reason` is Slack's error code
    or `installation_deleted`). The subscription table lives in another migration branch, so
    `subscription_id` has no foreign key; a row of a deleted subscription is ignored."""

    __tablename__ = "alert_subscription_pause"

    subscription_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    reason: str = Field(max_length=100)
    detail: str = Field(default="", max_length=500)
    paused_at: datetime = utc_field(nullable=False, default_now=True)
