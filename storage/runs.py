"""Write functions for workflow runs, attempts, jobs and steps.

GitHub does not deliver webhooks in order, so every write here merges. An event whose status
is behind the stored one (queued or in progress after completed) only fills empty fields. It
never moves the status, conclusion or completion time back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, SQLModel

from storage.models import Job, RunAttempt, Step, WorkflowRun
from storage.types import utc_now

STATUS_RANK = {
    "requested": 0,
    "pending": 0,
    "waiting": 0,
    "queued": 0,
    "in_progress": 1,
    "completed": 2,
}
# Conclusions of work that never ran on a runner.
NOT_RUN_CONCLUSIONS = frozenset({"skipped", "cancelled", "neutral", "stale", None})


def status_rank(status: str | None, conclusion: str | None) -> int:
    """Order statuses so that later states compare greater; unknown ones count by conclusion."""
    if status in STATUS_RANK:
        return STATUS_RANK[status]
    return 2 if conclusion else 0


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Return the seconds from start to end, or None if either is unknown.

    A negative interval (skipped or cancelled work, clock skew) is 0, never negative.
    """
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


@cache
def column_lengths(model: type[SQLModel]) -> dict[str, int]:
    """Return the maximum length of each of a table's string columns that has one."""
    # sqlmodel's AutoString is a TypeDecorator over String, so the length is read, not the class.
    lengths = {}
    for column in model.__table__.columns:  # type: ignore[attr-defined]
        length = getattr(column.type, "length", None)
        if isinstance(length, int) and length > 0:
            lengths[column.name] = length
    return lengths


def fit_to_columns(model: type[SQLModel], values: dict[str, Any]) -> dict[str, Any]:
    """Return values with strings cut to their column's length.

    GitHub sets no limit on some names the bot stores (workflow, job and branch names), and
    PostgreSQL rejects a longer string where SQLite keeps it, which would fail the delivery.
    """
    lengths = column_lengths(model)
    return {
        name: value[: lengths[name]] if isinstance(value, str) and name in lengths else value
        for name, value in values.items()
    }


def merge_fields(row: Any, values: dict[str, Any], *, forward: bool) -> None:
    """Copy values onto a row: all known values when moving forward, else only into empty fields.

    Strings are cut to their column's length first.
    """
    for name, value in fit_to_columns(type(row), values).items():
        if value is None:
            continue
        if forward or getattr(row, name) in (None, [], ""):
            setattr(row, name, value)


@dataclass
class RunFacts:
    """The run-level fields of a `workflow_run` payload."""

    id: int
    repo: str
    repository_id: int | None = None
    installation_id: int | None = None
    workflow_id: int | None = None
    workflow_name: str | None = None
    workflow_path: str | None = None
    run_number: int | None = None
    event: str | None = None
    head_branch: str | None = None
    head_sha: str | None = None
    head_repository: str | None = None
    display_title: str | None = None
    actor: str | None = None
    html_url: str | None = None
    created_at: datetime | None = None
    pull_request_numbers: list[int] = field(default_factory=list)


@dataclass
class AttemptFacts:
    """The attempt-level fields of a `workflow_run` payload."""

    run_id: int
    attempt: int
    status: str
    conclusion: str | None = None
    triggering_actor: str | None = None
    run_started_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class StepFacts:
    """One entry of a job's `steps` list."""

    number: int
    name: str
    status: str | None = None
    conclusion: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass
class JobFacts:
    """The fields of a `workflow_job` payload."""

    id: int
    run_id: int
    run_attempt: int
    repo: str
    name: str
    status: str
    stage: str = "build"
    conclusion: str | None = None
    workflow_name: str | None = None
    head_branch: str | None = None
    head_sha: str | None = None
    labels: list[str] = field(default_factory=list)
    runner_id: int | None = None
    runner_name: str | None = None
    runner_group_name: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    html_url: str | None = None
    steps: list[StepFacts] = field(default_factory=list)


def upsert_run(*, session: Session, facts: RunFacts) -> WorkflowRun:
    """Create or update a run's own fields; later values win, since they do not regress."""
    run = session.get(WorkflowRun, facts.id)
    if run is None:
        run = WorkflowRun(id=facts.id, repo=facts.repo)
    values = {name: getattr(facts, name) for name in RunFacts.__dataclass_fields__}
    values.pop("id")
    if not values["pull_request_numbers"]:
        values.pop("pull_request_numbers")
    merge_fields(run, values, forward=True)
    run.updated_at = utc_now()
    session.add(run)
    return run


def ensure_run(*, session: Session, run_id: int, repo: str, **fields: Any) -> WorkflowRun:
    """Return a run, creating a placeholder from a job's fields if its own event is not in yet."""
    run = session.get(WorkflowRun, run_id)
    if run is None:
        run = WorkflowRun(id=run_id, repo=repo)
    merge_fields(run, fields, forward=False)
    session.add(run)
    return run


def upsert_attempt(*, session: Session, facts: AttemptFacts) -> tuple[RunAttempt, bool]:
    """Create or merge a run attempt; return it and whether this event completed it."""
    attempt = session.get(RunAttempt, (facts.run_id, facts.attempt))
    if attempt is None:
        attempt = RunAttempt(run_id=facts.run_id, attempt=facts.attempt)
        was_completed = False
        forward = True
    else:
        was_completed = attempt.status == "completed"
        forward = status_rank(facts.status, facts.conclusion) >= status_rank(
            attempt.status, attempt.conclusion
        )

    incoming_completed = status_rank(facts.status, facts.conclusion) == 2
    values: dict[str, Any] = {
        "status": facts.status,
        "conclusion": facts.conclusion,
        "triggering_actor": facts.triggering_actor,
        "run_started_at": facts.run_started_at,
    }
    if incoming_completed:
        # workflow_run has no completion time; `updated_at` of the completed event is when it ended.
        values["completed_at"] = facts.updated_at
    merge_fields(attempt, values, forward=forward)
    if attempt.status == "completed":
        attempt.duration_s = seconds_between(attempt.run_started_at, attempt.completed_at)
    attempt.updated_at = utc_now()
    session.add(attempt)

    run = session.get(WorkflowRun, facts.run_id)
    if run is not None and facts.attempt > run.latest_attempt:
        run.latest_attempt = facts.attempt
        session.add(run)
    return attempt, attempt.status == "completed" and not was_completed


def get_attempt(*, session: Session, run_id: int, attempt: int) -> RunAttempt | None:
    """Return a stored run attempt."""
    return session.get(RunAttempt, (run_id, attempt))


def close_unstarted_jobs(*, session: Session, run_id: int, attempt: int, conclusion: str | None) -> int:
    """Close the jobs of a completed attempt that are still queued; return how many.

    Such jobs can never start. They get the status `completed`, the conclusion `cancelled` if
    the run was cancelled and `skipped` otherwise, and no execution time.
    """
    jobs = session.scalars(
        select(Job).where(
            Job.run_id == run_id,
            Job.run_attempt == attempt,
            Job.status.in_(["queued", "waiting", "pending", "requested"]),  # type: ignore[attr-defined]
        )
    ).all()
    for job in jobs:
        job.status = "completed"
        job.conclusion = "cancelled" if conclusion == "cancelled" else "skipped"
        job.queue_s = None
        job.duration_s = None
        job.updated_at = utc_now()
        session.add(job)
    return len(jobs)


def has_run_on_runner(facts: JobFacts, job: Job) -> bool:
    """Tell whether a job got a runner, so that it has an execution time."""
    if facts.runner_id or job.runner_name:
        return True
    if any(step.started_at for step in facts.steps):
        return True
    return job.conclusion not in NOT_RUN_CONCLUSIONS


def upsert_job(*, session: Session, facts: JobFacts) -> tuple[Job, bool]:
    """Create or merge a job and its steps; return it and whether this event completed it."""
    job = session.get(Job, facts.id)
    if job is None:
        job = Job(id=facts.id, run_id=facts.run_id, repo=facts.repo, name=facts.name)
        was_completed = False
        forward = True
    else:
        was_completed = job.status == "completed"
        forward = status_rank(facts.status, facts.conclusion) >= status_rank(
            job.status, job.conclusion
        )

    values: dict[str, Any] = {
        "run_attempt": facts.run_attempt,
        "name": facts.name,
        "stage": facts.stage,
        "status": facts.status,
        "conclusion": facts.conclusion,
        "workflow_name": facts.workflow_name,
        "head_branch": facts.head_branch,
        "head_sha": facts.head_sha,
        "labels": facts.labels or None,
        "runner_name": facts.runner_name,
        "runner_group_name": facts.runner_group_name,
        "created_at": facts.created_at,
        "started_at": facts.started_at,
        "completed_at": facts.completed_at if facts.status == "completed" else None,
        "html_url": facts.html_url,
    }
    merge_fields(job, values, forward=forward)

    if job.status == "completed" and not has_run_on_runner(facts, job):
        job.queue_s = None
        job.duration_s = None
    else:
        # A queued or waiting job already carries `started_at` (equal to `created_at`), but
        # it leaves the queue only when a runner picks it up.
        has_left_queue = status_rank(job.status, job.conclusion) >= STATUS_RANK["in_progress"]
        job.queue_s = seconds_between(job.created_at, job.started_at) if has_left_queue else None
        job.duration_s = (
            seconds_between(job.started_at, job.completed_at) if job.status == "completed" else None
        )
    job.updated_at = utc_now()
    session.add(job)

    # One query reads all of the job's stored steps: a lookup per step costs a query and an
    # autoflush each, and jobs carry up to dozens of steps.
    stored_steps: dict[int, Step] = {}
    if facts.steps:
        stored_steps = {
            step.number: step for step in session.scalars(select(Step).where(Step.job_id == facts.id))
        }
    for step_facts in facts.steps:
        upsert_step(
            session=session, job_id=facts.id, facts=step_facts, forward=forward, stored=stored_steps
        )
    return job, job.status == "completed" and not was_completed


def upsert_step(
    *,
    session: Session,
    job_id: int,
    facts: StepFacts,
    forward: bool,
    stored: dict[int, Step] | None = None,
) -> Step:
    """Create or merge one step, keyed by job id and step number.

    `stored` maps step numbers to the job's stored steps when the caller has read them all;
    a step created here is added to it.
    """
    if stored is None:
        step = session.get(Step, (job_id, facts.number))
    else:
        step = stored.get(facts.number)
    if step is None:
        step = Step(job_id=job_id, number=facts.number, name=facts.name)
        if stored is not None:
            stored[facts.number] = step
        forward = True
    elif forward:
        forward = status_rank(facts.status, facts.conclusion) >= status_rank(
            step.status, step.conclusion
        )
    merge_fields(
        step,
        {
            "name": facts.name,
            "status": facts.status,
            "conclusion": facts.conclusion,
            "started_at": facts.started_at,
            "completed_at": facts.completed_at,
        },
        forward=forward,
    )
    step.duration_s = seconds_between(step.started_at, step.completed_at)
    session.add(step)
    return step
