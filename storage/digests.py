"""Digest schedules of Slack channels, and the per-repository figures a digest shows.

Every figure covers a window [since, until): run attempts and jobs by their completion time,
incidents by the time they opened or were resolved, flaky failures by the time they failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from storage.metric_filter import MetricFilter
from storage.metric_stats import calculate_statistics
from storage.models import Job, MetricType, RunAttempt, WorkflowRun
from storage.models_alerts import AlertFailure, AlertIncident
from storage.models_digest import ChannelDigest
from storage.models_slack import SlackSubscription
from storage.types import utc_now

# Conclusions that count as failed in a digest's failure rate, as in `/release stats`.
FAILED_CONCLUSIONS = ("failure", "timed_out", "startup_failure")


def get_digest(*, session: Session, team_id: str, channel_id: str) -> ChannelDigest | None:
    """Return the digest schedule of a channel, if any."""
    return session.scalars(
        select(ChannelDigest).where(
            ChannelDigest.team_id == team_id, ChannelDigest.channel_id == channel_id
        )
    ).first()


def set_digest(
    *, session: Session, team_id: str, channel_id: str, frequency: str, user_id: str | None
) -> tuple[ChannelDigest, str]:
    """Store or change a channel's digest; return it and `created`, `changed` or `unchanged`."""
    digest = get_digest(session=session, team_id=team_id, channel_id=channel_id)
    if digest is None:
        digest = ChannelDigest(
            team_id=team_id, channel_id=channel_id, frequency=frequency, created_by=user_id
        )
        outcome = "created"
    elif digest.frequency == frequency:
        return digest, "unchanged"
    else:
        digest.frequency = frequency
        digest.updated_at = utc_now()
        outcome = "changed"
    session.add(digest)
    session.flush()
    return digest, outcome


def remove_digest(*, session: Session, team_id: str, channel_id: str) -> bool:
    """Delete a channel's digest; return whether there was one."""
    digest = get_digest(session=session, team_id=team_id, channel_id=channel_id)
    if digest is None:
        return False
    session.delete(digest)
    return True


def list_digests(*, session: Session) -> Sequence[ChannelDigest]:
    """Return every digest schedule, oldest first."""
    return session.scalars(select(ChannelDigest).order_by(ChannelDigest.id)).all()


def followed_repositories(*, session: Session, team_id: str, channel_id: str) -> list[str]:
    """Return the repositories a channel's subscriptions follow, sorted."""
    repos = session.scalars(
        select(SlackSubscription.repo)
        .where(SlackSubscription.team_id == team_id, SlackSubscription.channel_id == channel_id)
        .distinct()
    ).all()
    return sorted(repos)


@dataclass
class SlowJob:
    """A job name and its longest execution in the window, in seconds."""

    workflow: str
    name: str
    duration_s: float


@dataclass
class RepoFigures:
    """The figures a digest shows about one repository in one window."""

    repo: str
    runs: int = 0
    failed: int = 0
    succeeded: int = 0
    build_time: dict[str, Any] = field(default_factory=dict)
    previous_build_time: dict[str, Any] = field(default_factory=dict)
    slowest_jobs: list[SlowJob] = field(default_factory=list)
    incidents_opened: int = 0
    incidents_resolved: int = 0
    flaky_failures: int = 0

    @property
    def failure_rate(self) -> float | None:
        """Failed attempts over failed plus successful ones (skipped and cancelled are left out), or None."""
        decided = self.failed + self.succeeded
        return self.failed / decided if decided else None


def build_time_statistics(
    session: Session, repo: str, since: datetime, until: datetime
) -> dict[str, Any]:
    """Return the build time statistics (count, p50, p95, ...) of a repository's attempts in a window."""
    return calculate_statistics(
        session=session,
        metric_filter=MetricFilter(
            metric_type=MetricType.BUILD_TIME.value, tags={"repo": repo}, since=since, until=until
        ),
    )


def gather_figures(
    *,
    session: Session,
    repo: str,
    since: datetime,
    until: datetime,
    previous_since: datetime,
    slow_jobs: int = 3,
) -> RepoFigures:
    """Return a repository's figures for [since, until), with the build time of [previous_since, since) for the trend."""
    figures = RepoFigures(repo=repo)
    outcomes = session.execute(
        select(RunAttempt.conclusion, func.count())
        .join(WorkflowRun, WorkflowRun.id == RunAttempt.run_id)
        .where(
            WorkflowRun.repo == repo,
            RunAttempt.status == "completed",
            RunAttempt.completed_at >= since,  # type: ignore[operator]
            RunAttempt.completed_at < until,  # type: ignore[operator]
        )
        .group_by(RunAttempt.conclusion)
    ).all()
    figures.runs = sum(int(count) for _, count in outcomes)
    figures.failed = sum(
        int(count) for conclusion, count in outcomes if conclusion in FAILED_CONCLUSIONS
    )
    figures.succeeded = sum(int(count) for conclusion, count in outcomes if conclusion == "success")
    figures.build_time = build_time_statistics(session, repo, since, until)
    figures.previous_build_time = build_time_statistics(session, repo, previous_since, since)

    slowest = session.execute(
        select(Job.workflow_name, Job.name, func.max(Job.duration_s).label("longest"))
        .where(
            Job.repo == repo,
            Job.duration_s.is_not(None),  # type: ignore[union-attr]
            Job.completed_at >= since,  # type: ignore[operator]
            Job.completed_at < until,  # type: ignore[operator]
        )
        .group_by(Job.workflow_name, Job.name)
        .order_by(func.max(Job.duration_s).desc(), Job.name)
        .limit(slow_jobs)
    ).all()
    figures.slowest_jobs = [
        SlowJob(workflow=workflow or "", name=name, duration_s=float(longest))
        for workflow, name, longest in slowest
    ]

    figures.incidents_opened = count_rows(
        session,
        AlertIncident.id,
        AlertIncident.repo == repo,
        AlertIncident.opened_at >= since,
        AlertIncident.opened_at < until,
    )
    figures.incidents_resolved = count_rows(
        session,
        AlertIncident.id,
        AlertIncident.repo == repo,
        AlertIncident.resolved_at >= since,  # type: ignore[operator]
        AlertIncident.resolved_at < until,  # type: ignore[operator]
    )
    figures.flaky_failures = count_rows(
        session,
        AlertFailure.id,
        AlertFailure.repo == repo,
        AlertFailure.flaky.is_(True),  # type: ignore[attr-defined]
        AlertFailure.occurred_at >= since,
        AlertFailure.occurred_at < until,
    )
    return figures


def count_rows(session: Session, column: Any, *conditions: Any) -> int:
    """Count the rows matching every condition."""
    return int(session.scalar(select(func.count(column)).where(*conditions)) or 0)
