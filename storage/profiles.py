"""Reads for build profiles: the jobs and steps of a run attempt, and recent successful attempts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select, tuple_
from sqlmodel import Session

from storage.models import Job, RunAttempt, Step, WorkflowRun

# Triggering events of pull request runs, which never count as a branch's own history.
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")


@dataclass
class AttemptJobs:
    """A run attempt with its jobs (by start time, then id) and each job's steps (by number)."""

    run: WorkflowRun
    attempt: int
    jobs: list[Job] = field(default_factory=list)
    steps: dict[int, list[Step]] = field(default_factory=dict)


def load_attempt_jobs(*, session: Session, run_id: int, attempt: int | None = None) -> AttemptJobs | None:
    """Return a run attempt's jobs and steps, or None if the run is unknown.

    Without `attempt`, the latest attempt that has jobs is used (the run's latest attempt
    if none has).
    """
    run = session.get(WorkflowRun, run_id)
    if run is None:
        return None
    if attempt is None:
        attempt = session.scalar(select(func.max(Job.run_attempt)).where(Job.run_id == run_id)) or run.latest_attempt
    loaded = load_many(session=session, keys=[(run_id, attempt)], runs={run_id: run})
    return loaded[0]


def load_many(
    *, session: Session, keys: Sequence[tuple[int, int]], runs: dict[int, WorkflowRun] | None = None
) -> list[AttemptJobs]:
    """Return the jobs and steps of several (run id, attempt) pairs, in the order given."""
    if not keys:
        return []
    runs = dict(runs or {})
    missing = [run_id for run_id, _ in keys if run_id not in runs]
    if missing:
        for run in session.scalars(select(WorkflowRun).where(WorkflowRun.id.in_(missing))):  # type: ignore[attr-defined]
            runs[run.id] = run
    jobs = session.scalars(
        select(Job)
        .where(tuple_(Job.run_id, Job.run_attempt).in_(list(keys)))
        # Jobs that never started go last on SQLite and PostgreSQL alike.
        .order_by(Job.started_at.is_(None), Job.started_at, Job.id)  # type: ignore[union-attr]
    ).all()
    steps: dict[int, list[Step]] = defaultdict(list)
    job_ids = [job.id for job in jobs]
    if job_ids:
        for step in session.scalars(
            select(Step).where(Step.job_id.in_(job_ids)).order_by(Step.job_id, Step.number)  # type: ignore[attr-defined]
        ):
            steps[step.job_id].append(step)

    by_key: dict[tuple[int, int], AttemptJobs] = {
        (run_id, attempt): AttemptJobs(run=runs[run_id], attempt=attempt)
        for run_id, attempt in keys
        if run_id in runs
    }
    for job in jobs:
        entry = by_key.get((job.run_id, job.run_attempt))
        if entry is not None:
            entry.jobs.append(job)
            entry.steps[job.id] = steps.get(job.id, [])
    return [by_key[key] for key in keys if key in by_key]


def recent_successful_attempts(
    *,
    session: Session,
    repo: str,
    workflow_name: str | None,
    workflow_id: int | None,
    branch: str,
    last_n: int,
    exclude_run_id: int | None = None,
) -> list[tuple[int, int]]:
    """Return (run id, attempt) of the newest successful attempts of a workflow on a branch.

    The workflow is matched by id when known, since a workflow's name can change. Runs of
    pull requests are left out, and so are runs whose head is in another repository: a fork
    can have a branch of the same name, and its runs are not the branch's history. Attempts
    with no stored job are left out too: their job events were missed, and as a profile of
    zero seconds they would drag the median down.
    """
    statement = (
        select(RunAttempt.run_id, RunAttempt.attempt)
        .join(WorkflowRun, WorkflowRun.id == RunAttempt.run_id)
        .where(
            WorkflowRun.repo == repo,
            WorkflowRun.head_branch == branch,
            or_(WorkflowRun.event.is_(None), WorkflowRun.event.notin_(PULL_REQUEST_EVENTS)),  # type: ignore[union-attr]
            or_(WorkflowRun.head_repository.is_(None), WorkflowRun.head_repository == repo),  # type: ignore[union-attr]
            RunAttempt.status == "completed",
            RunAttempt.conclusion == "success",
            select(Job.id)
            .where(Job.run_id == RunAttempt.run_id, Job.run_attempt == RunAttempt.attempt)
            .exists(),
        )
        .order_by(RunAttempt.completed_at.desc(), RunAttempt.run_id.desc())  # type: ignore[union-attr]
        .limit(last_n)
    )
    if workflow_id is not None:
        statement = statement.where(WorkflowRun.workflow_id == workflow_id)
    else:
        statement = statement.where(WorkflowRun.workflow_name == workflow_name)
    if exclude_run_id is not None:
        statement = statement.where(WorkflowRun.id != exclude_run_id)
    return [(int(run_id), int(attempt)) for run_id, attempt in session.execute(statement)]
