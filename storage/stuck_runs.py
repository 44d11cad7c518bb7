"""Reads behind the stuck-run check: unfinished run attempts, leftover jobs of completed
attempts, and the recent build times of a workflow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, select
from sqlmodel import Session

from storage.metric_filter import MetricFilter
from storage.metric_stats import calculate_statistics
from storage.models import Job, MetricType, Repository, RunAttempt, WorkflowRun
from storage.models_alerts import INCIDENT_OPEN, AlertFailure, AlertIncident

# Statuses of a run attempt or job that has not finished (GitHub's `status` values).
UNFINISHED_STATUSES = ("queued", "in_progress", "waiting", "pending", "requested")
# Statuses of a job that has not started.
UNSTARTED_STATUSES = ("queued", "waiting", "pending", "requested")
STUCK_KIND = "stuck"


@dataclass(frozen=True)
class UnfinishedRun:
    """A run attempt that is queued or in progress, and when it started waiting."""

    run_id: int
    attempt: int
    repo: str
    workflow: str
    branch: str
    status: str
    since: datetime
    installation_id: int | None
    head_sha: str | None
    actor: str | None
    event: str | None


def stuck_source_key(run_id: int, attempt: int) -> str:
    """Return the failure source key of a stuck run attempt, which makes its alert unique."""
    return f"{STUCK_KIND}:run:{run_id}:{attempt}"


def list_unfinished_runs(*, session: Session, started_before: datetime) -> list[UnfinishedRun]:
    """Return the run attempts still queued or in progress that started before a time.

    The start is the attempt's `run_started_at`, else the run's `created_at`. An attempt
    with neither is left out, because its age is unknown. Attempts without a row, known only
    from their unfinished jobs, are included too.
    """
    rows = session.execute(
        select(RunAttempt, WorkflowRun)
        .join(WorkflowRun, WorkflowRun.id == RunAttempt.run_id)
        .where(RunAttempt.status.in_(UNFINISHED_STATUSES))  # type: ignore[attr-defined]
        .order_by(RunAttempt.run_id, RunAttempt.attempt)
    ).all()
    found = []
    for attempt, run in rows:
        since = attempt.run_started_at or run.created_at
        if since is None or since >= started_before or not run.repo:
            continue
        found.append(
            UnfinishedRun(
                run_id=run.id,
                attempt=attempt.attempt,
                repo=run.repo,
                workflow=run.workflow_name or "",
                branch=run.head_branch or "",
                status=attempt.status,
                since=since,
                installation_id=run.installation_id or repository_installation(session, run.repo),
                head_sha=run.head_sha,
                actor=attempt.triggering_actor or run.actor,
                event=run.event,
            )
        )
    return found + list_unfinished_jobs_without_attempt(
        session=session, started_before=started_before
    )


def list_unfinished_jobs_without_attempt(
    *, session: Session, started_before: datetime
) -> list[UnfinishedRun]:
    """Return the attempts known only from unfinished jobs (their workflow_run events are
    missing) whose first job was created before a time."""
    attempt_exists = (
        select(RunAttempt.run_id)
        .where(RunAttempt.run_id == Job.run_id, RunAttempt.attempt == Job.run_attempt)
        .exists()
    )
    jobs = session.scalars(
        select(Job)
        .where(Job.status.in_(UNFINISHED_STATUSES), ~attempt_exists)  # type: ignore[attr-defined]
        .order_by(Job.run_id, Job.run_attempt, Job.id)
    ).all()
    earliest: dict[tuple[int, int], tuple[datetime, Job]] = {}
    for job in jobs:
        since = job.created_at or job.started_at
        if since is None:
            continue
        key = (job.run_id, job.run_attempt)
        if key not in earliest or since < earliest[key][0]:
            earliest[key] = (since, job)

    found = []
    for (run_id, attempt), (since, job) in sorted(earliest.items()):
        if since >= started_before or not job.repo:
            continue
        run = session.get(WorkflowRun, run_id)
        found.append(
            UnfinishedRun(
                run_id=run_id,
                attempt=attempt,
                repo=job.repo,
                workflow=job.workflow_name or (run.workflow_name if run else None) or "",
                branch=job.head_branch or "",
                status=job.status,
                since=since,
                installation_id=(run.installation_id if run else None)
                or repository_installation(session, job.repo),
                head_sha=job.head_sha,
                actor=run.actor if run else None,
                event=run.event if run else None,
            )
        )
    return found


def repository_installation(session: Session, repo: str) -> int | None:
    """Return the installation of a repository, for runs stored only as a placeholder from a job."""
    return session.scalars(
        select(Repository.installation_id).where(Repository.full_name == repo)
    ).first()


def is_attempt_unfinished(*, session: Session, run_id: int, attempt: int) -> bool:
    """Tell whether a run attempt has not completed, by its row, or without one by its jobs."""
    row = session.get(RunAttempt, (run_id, attempt))
    if row is not None:
        return row.status != "completed"
    unfinished_job = session.scalars(
        select(Job.id).where(
            Job.run_id == run_id,
            Job.run_attempt == attempt,
            Job.status.in_(UNFINISHED_STATUSES),  # type: ignore[attr-defined]
        )
    ).first()
    return unfinished_job is not None


def list_attempts_with_unstarted_jobs(*, session: Session) -> list[tuple[int, int, str | None]]:
    """Return (run id, attempt, conclusion) of each completed attempt that still has unstarted jobs."""
    rows = session.execute(
        select(RunAttempt.run_id, RunAttempt.attempt, RunAttempt.conclusion)
        .join(Job, and_(Job.run_id == RunAttempt.run_id, Job.run_attempt == RunAttempt.attempt))
        .where(
            RunAttempt.status == "completed",
            Job.status.in_(UNSTARTED_STATUSES),  # type: ignore[attr-defined]
        )
        .group_by(RunAttempt.run_id, RunAttempt.attempt, RunAttempt.conclusion)
        .order_by(RunAttempt.run_id, RunAttempt.attempt)
    ).all()
    return [(int(run_id), int(attempt), conclusion) for run_id, attempt, conclusion in rows]


def workflow_p95(
    *, session: Session, repo: str, workflow: str, now: datetime, days: int = 30
) -> float | None:
    """Return the p95 build time in seconds of a workflow's attempts completed in the last `days` days."""
    statistics = calculate_statistics(
        session=session,
        metric_filter=MetricFilter(
            metric_type=MetricType.BUILD_TIME.value,
            tags={"repo": repo, "workflow": workflow},
            since=now - timedelta(days=days),
            until=now,
        ),
    )
    return statistics["p95"]


def list_open_stuck_incidents(*, session: Session) -> list[AlertIncident]:
    """Return the open incidents of stuck runs, oldest first, locking them for this transaction."""
    return list(
        session.scalars(
            select(AlertIncident)
            .where(AlertIncident.status == INCIDENT_OPEN, AlertIncident.kind == STUCK_KIND)
            .order_by(AlertIncident.id)
            .with_for_update(skip_locked=True)
        ).all()
    )


def count_unfinished_stuck_runs(*, session: Session, incident_id: int) -> int:
    """Count the stuck run attempts of an incident that have not completed yet."""
    failures = session.scalars(
        select(AlertFailure).where(
            AlertFailure.incident_id == incident_id,
            AlertFailure.run_id.is_not(None),  # type: ignore[union-attr]
        )
    ).all()
    return sum(
        is_attempt_unfinished(
            session=session, run_id=failure.run_id or 0, attempt=failure.run_attempt or 1
        )
        for failure in failures
    )
