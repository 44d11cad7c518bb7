"""Write functions for workflow jobs and their steps, in SQLAlchemy Core.

`workflow_job` is the most frequent webhook: each job sends queued, in progress and completed,
and each event carries up to dozens of steps. Through ORM objects a delivery cost several
milliseconds, mostly in the unit of work. Here a job is one upsert, and its changed steps one more. The merge rules are those of storage.runs: an event behind the stored status
only fills empty fields.

No `Job` or `Step` object is loaded here. A `Job` that another query of the same transaction
put in the session is expired after each write, so it reloads the written row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import object_session
from sqlmodel import Session

from storage import prefetch
from storage.db import upsert_insert
from storage.models import Job, Step
from storage.runs import (
    NOT_RUN_CONCLUSIONS,
    STATUS_RANK,
    merge_values,
    seconds_between,
    status_rank,
)
from storage.types import utc_now

JOB = Job.__table__  # type: ignore[attr-defined]
STEP = Step.__table__  # type: ignore[attr-defined]
# Statuses of a job that no runner has picked up yet.
UNSTARTED_STATUSES = ("queued", "waiting", "pending", "requested")


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


class JobRecord(SimpleNamespace):
    """A job's stored columns as attributes named as on `Job`, as `upsert_job` wrote them."""

    id: int
    run_id: int
    run_attempt: int
    repo: str
    name: str
    stage: str
    status: str
    conclusion: str | None
    workflow_name: str | None
    head_branch: str | None
    head_sha: str | None
    labels: list[str]
    runner_name: str | None
    runner_group_name: str | None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    queue_s: float | None
    duration_s: float | None
    html_url: str | None
    updated_at: datetime


def has_run_on_runner(facts: JobFacts, job: dict[str, Any]) -> bool:
    """Tell whether a job got a runner, so that it has an execution time."""
    if facts.runner_id or job["runner_name"]:
        return True
    if any(step.started_at for step in facts.steps):
        return True
    return job["conclusion"] not in NOT_RUN_CONCLUSIONS


def read_job(session: Session, job_id: int) -> dict[str, Any] | None:
    """Return a job's stored row, from the batch's prefetch when it read the job."""
    facts = prefetch.batch_facts(session)
    if facts is not None and job_id in facts.jobs:
        return facts.jobs[job_id]
    row = session.execute(select(JOB.c).where(JOB.c.id == job_id)).mappings().first()
    return dict(row) if row is not None else None


def read_steps(session: Session, job_id: int) -> dict[int, dict[str, Any]]:
    """Return a job's stored steps by number, from the batch's prefetch when it read the job."""
    facts = prefetch.batch_facts(session)
    if facts is not None and job_id in facts.steps:
        return facts.steps[job_id]
    rows = session.execute(select(STEP.c).where(STEP.c.job_id == job_id)).mappings()
    return {row["number"]: dict(row) for row in rows}


def upsert_job(*, session: Session, facts: JobFacts) -> tuple[JobRecord, bool]:
    """Create or merge a job and its steps; return it and whether this event completed it."""
    stored = read_job(session, facts.id)
    if stored is None:
        job: dict[str, Any] = dict.fromkeys(JOB.c.keys())
        job.update(id=facts.id, run_id=facts.run_id, repo=facts.repo, name=facts.name, stage="build",
                   status="queued", run_attempt=1, labels=[])
        was_completed = False
        forward = True
    else:
        job = dict(stored)
        was_completed = job["status"] == "completed"
        forward = status_rank(facts.status, facts.conclusion) >= status_rank(job["status"], job["conclusion"])

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
    merge_values(Job, job, values, forward=forward)

    if job["status"] == "completed" and not has_run_on_runner(facts, job):
        job["queue_s"] = None
        job["duration_s"] = None
    else:
        # A queued or waiting job already carries `started_at` (equal to `created_at`), but
        # it leaves the queue only when a runner picks it up.
        has_left_queue = status_rank(job["status"], job["conclusion"]) >= STATUS_RANK["in_progress"]
        job["queue_s"] = seconds_between(job["created_at"], job["started_at"]) if has_left_queue else None
        job["duration_s"] = (
            seconds_between(job["started_at"], job["completed_at"]) if job["status"] == "completed" else None
        )
    job["updated_at"] = utc_now()
    write_rows(session, JOB, ["id"], [job])
    remember_job(session, job)

    upsert_steps(session=session, job_id=facts.id, steps=facts.steps, forward=forward)
    return JobRecord(**job), job["status"] == "completed" and not was_completed


def upsert_steps(*, session: Session, job_id: int, steps: list[StepFacts], forward: bool) -> None:
    """Create or merge a job's steps, keyed by job id and step number; write those that changed."""
    if not steps:
        return
    stored = read_steps(session, job_id)
    changed: dict[int, dict[str, Any]] = {}
    for facts in steps:
        current = stored.get(facts.number)
        if current is None:
            row: dict[str, Any] = dict.fromkeys(STEP.c.keys())
            row.update(job_id=job_id, number=facts.number)
            step_forward = True
        else:
            row = dict(current)
            step_forward = forward and status_rank(facts.status, facts.conclusion) >= status_rank(
                row["status"], row["conclusion"]
            )
        merge_values(
            Step,
            row,
            {
                "name": facts.name,
                "status": facts.status,
                "conclusion": facts.conclusion,
                "started_at": facts.started_at,
                "completed_at": facts.completed_at,
            },
            forward=step_forward,
        )
        row["duration_s"] = seconds_between(row["started_at"], row["completed_at"])
        if row != current:
            stored[facts.number] = changed[facts.number] = row
    if changed:
        write_rows(session, STEP, ["job_id", "number"], list(changed.values()))
    cached = prefetch.batch_facts(session)
    if cached is not None and job_id in cached.steps:
        cached.steps[job_id] = stored


def remember_job(session: Session, job: dict[str, Any]) -> None:
    """Keep the batch's cache current, and expire a `Job` object of the same id in the session."""
    cached = prefetch.batch_facts(session)
    if cached is not None and job["id"] in cached.jobs and "run_id" in job:
        cached.jobs[job["id"]] = job
    loaded = session.identity_map.get(session.identity_key(Job, job["id"]))  # type: ignore[no-untyped-call]
    if loaded is not None and object_session(loaded) is session:
        session.expire(loaded)


def write_rows(session: Session, table: Any, key: list[str], rows: list[dict[str, Any]]) -> None:
    """Insert rows, or update every other column of those whose key is already stored.

    In a worker batch the rows are held and written together (storage.prefetch.queue_rows).
    """
    statement = upsert_statement(session.get_bind().dialect.name, table.name, tuple(key))
    if prefetch.queue_rows(session, statement, table.name, key, rows):
        return
    # The session's connection skips the ORM layer and its autoflush. Nothing needs flushing
    # first, because the bot writes these tables with Core statements only.
    session.connection().execute(statement, rows)


@cache
def upsert_statement(dialect_name: str, table_name: str, key: tuple[str, ...]) -> Any:
    """Return an INSERT that updates every non-key column of an existing row, built once."""
    table = {JOB.name: JOB, STEP.name: STEP}[table_name]
    insert = upsert_insert(dialect_name)
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(key),
        set_={name: statement.excluded[name] for name in table.c.keys() if name not in key},
    )


def close_unstarted_jobs(*, session: Session, run_id: int, attempt: int, conclusion: str | None) -> int:
    """Close the jobs of a completed attempt that are still queued; return how many.

    Such jobs can never start. They get the status `completed`, the conclusion `cancelled` if
    the run was cancelled and `skipped` otherwise, and no execution time.
    """
    prefetch.flush_pending_rows(session)
    values = {
        "status": "completed",
        "conclusion": "cancelled" if conclusion == "cancelled" else "skipped",
        "queue_s": None,
        "duration_s": None,
        "updated_at": utc_now(),
    }
    closed = session.execute(
        update(JOB)
        .where(
            JOB.c.run_id == run_id,
            JOB.c.run_attempt == attempt,
            JOB.c.status.in_(UNSTARTED_STATUSES),
        )
        .values(**values)
        .returning(JOB.c.id)
    ).scalars().all()
    cached = prefetch.batch_facts(session)
    for job_id in closed:
        row = cached.jobs.get(job_id) if cached is not None else None
        if row is not None:
            row.update(values)
        remember_job(session, {"id": job_id} if row is None else row)
    return len(closed)
