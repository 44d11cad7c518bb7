"""Read functions for runs, attempts, jobs and steps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from storage.models import Job, RunAttempt, Step, WorkflowRun


def list_runs(
    *,
    session: Session,
    repo: str | None = None,
    workflow: str | None = None,
    branch: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> Sequence[WorkflowRun]:
    """Return runs, newest first, filtered by repo, workflow name and branch."""
    statement = select(WorkflowRun).order_by(WorkflowRun.id.desc()).limit(limit)  # type: ignore[union-attr]
    if repo is not None:
        statement = statement.where(WorkflowRun.repo == repo.lower())
    if workflow is not None:
        statement = statement.where(WorkflowRun.workflow_name == workflow)
    if branch is not None:
        statement = statement.where(WorkflowRun.head_branch == branch)
    if before_id is not None:
        statement = statement.where(WorkflowRun.id < before_id)
    return session.scalars(statement).all()


def get_run(*, session: Session, run_id: int) -> WorkflowRun | None:
    """Return a run by GitHub's run id."""
    return session.get(WorkflowRun, run_id)


def list_attempts(*, session: Session, run_ids: Sequence[int]) -> Sequence[RunAttempt]:
    """Return the attempts of the given runs, in attempt order."""
    if not run_ids:
        return []
    return session.scalars(
        select(RunAttempt)
        .where(RunAttempt.run_id.in_(run_ids))  # type: ignore[attr-defined]
        .order_by(RunAttempt.run_id, RunAttempt.attempt)
    ).all()


def list_jobs(*, session: Session, run_ids: Sequence[int]) -> Sequence[Job]:
    """Return the jobs of the given runs, by start time and then id."""
    if not run_ids:
        return []
    return session.scalars(
        select(Job)
        .where(Job.run_id.in_(run_ids))  # type: ignore[attr-defined]
        .order_by(Job.run_id, Job.created_at, Job.id)
    ).all()


def list_steps(*, session: Session, job_ids: Sequence[int]) -> Sequence[Step]:
    """Return the steps of the given jobs, in step-number order."""
    if not job_ids:
        return []
    return session.scalars(
        select(Step).where(Step.job_id.in_(job_ids)).order_by(Step.job_id, Step.number)  # type: ignore[attr-defined]
    ).all()


def latest_activity(*, session: Session) -> datetime | None:
    """Return when the newest run was last updated."""
    return session.scalar(select(WorkflowRun.updated_at).order_by(WorkflowRun.updated_at.desc()).limit(1))  # type: ignore[attr-defined]
