"""Read functions over GitHub facts that the Slack views need beyond `storage.queries`:
releases and tags, metric points, run attempts and job outcomes over a window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlmodel import Session

from storage.metrics import MetricFilter
from storage.models import Job, Metric, Release, RunAttempt, Tag, WorkflowRun


def find_release(*, session: Session, repo: str, tag: str) -> Release | None:
    """Return a repository's release with this tag (with or without a leading `v`)."""
    candidates = {tag, tag.removeprefix("v"), f"v{tag.removeprefix('v')}"}
    rows = session.scalars(
        select(Release)
        .where(Release.repo == repo, Release.tag_name.in_(sorted(candidates)))  # type: ignore[union-attr]
        .order_by(Release.id.desc())  # type: ignore[union-attr]
    ).all()
    exact = [row for row in rows if row.tag_name == tag]
    return (exact or list(rows) or [None])[0]


def latest_release(*, session: Session, repo: str) -> Release | None:
    """Return a repository's newest release that is not a draft or deleted."""
    return session.scalars(
        select(Release)
        .where(Release.repo == repo, Release.draft.is_(False), Release.state != "deleted")  # type: ignore[attr-defined]
        .order_by(
            Release.published_at.desc().nulls_last(),
            Release.created_at.desc().nulls_last(),
            Release.id.desc(),
        )  # type: ignore[union-attr]
        .limit(1)
    ).first()


def list_metric_points(
    *, session: Session, metric_filter: MetricFilter, limit: int = 100_000
) -> list[tuple[datetime, float]]:
    """Return (timestamp, value) of the matching points, oldest first, at most `limit`."""
    conditions = metric_filter.conditions()
    statement = select(Metric.timestamp, Metric.value).order_by(Metric.timestamp).limit(limit)
    if conditions:
        statement = statement.where(and_(*conditions))
    return [(timestamp, value) for timestamp, value in session.execute(statement).all()]


@dataclass(frozen=True)
class AttemptRow:
    """One completed attempt of a run, with the run's filter fields."""

    run_id: int
    attempt: int
    conclusion: str | None
    completed_at: datetime | None


def list_completed_attempts(
    *,
    session: Session,
    repo: str | None,
    workflow: str | None = None,
    branch: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AttemptRow]:
    """Return the attempts that completed in a window, filtered by repository, workflow and branch."""
    statement = (
        select(
            RunAttempt.run_id, RunAttempt.attempt, RunAttempt.conclusion, RunAttempt.completed_at
        )
        .join(WorkflowRun, WorkflowRun.id == RunAttempt.run_id)
        .where(RunAttempt.status == "completed")
        .order_by(RunAttempt.completed_at)
    )
    if repo is not None:
        statement = statement.where(WorkflowRun.repo == repo)
    if workflow is not None:
        statement = statement.where(WorkflowRun.workflow_name == workflow)
    if branch is not None:
        statement = statement.where(WorkflowRun.head_branch == branch)
    if since is not None:
        statement = statement.where(RunAttempt.completed_at >= since)  # type: ignore[operator]
    if until is not None:
        statement = statement.where(RunAttempt.completed_at < until)  # type: ignore[operator]
    return [AttemptRow(*row) for row in session.execute(statement).all()]


def list_release_tags(*, session: Session, repo: str, limit: int) -> list[str]:
    """Return the tags of a repository's newest releases."""
    rows = session.scalars(
        select(Release.tag_name)
        .where(Release.repo == repo, Release.tag_name.is_not(None))  # type: ignore[union-attr]
        .order_by(Release.id.desc())  # type: ignore[union-attr]
        .limit(limit)
    )
    return [tag for tag in rows.all() if tag]


def get_tag(*, session: Session, repo: str, name: str) -> Tag | None:
    """Return a pushed tag of a repository, if it was recorded and not deleted."""
    tag = session.get(Tag, (repo, name))
    return tag if tag is not None and not tag.deleted else None


def count_job_outcomes(
    *,
    session: Session,
    repo: str | None,
    workflow: str | None = None,
    branch: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, int]:
    """Count the conclusions of jobs that completed in a window, filtered by repository, workflow and branch."""
    statement = (
        select(Job.conclusion, func.count(Job.id))
        .where(Job.status == "completed")
        .group_by(Job.conclusion)
    )
    if repo is not None:
        statement = statement.where(Job.repo == repo)
    if workflow is not None:
        statement = statement.where(Job.workflow_name == workflow)
    if branch is not None:
        statement = statement.where(Job.head_branch == branch)
    if since is not None:
        statement = statement.where(Job.completed_at >= since)  # type: ignore[operator]
    if until is not None:
        statement = statement.where(Job.completed_at < until)  # type: ignore[operator]
    return {
        conclusion or "unknown": int(count) for conclusion, count in session.execute(statement).all()
    }
