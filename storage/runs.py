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

from sqlmodel import Session, SQLModel

from storage import prefetch
from storage.models import RunAttempt, WorkflowRun
from storage.types import utc_now

STATUS_RANK = {
    "requested": 0,
    "pending": 0,
    "waiting": 0,
    "queued": 0,
    "in_progress": 1,
    "completed": 2,
}
# The conclusions in GitHub's webhook schemas for workflow runs and jobs. Others are stored as
# sent, and the handlers log a WARNING.
KNOWN_CONCLUSIONS = frozenset(
    {"success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required", "stale",
     "startup_failure", None}
)
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


def merge_values(model: type[SQLModel], row: dict[str, Any], values: dict[str, Any], *, forward: bool) -> None:
    """Like `merge_fields`, for a row held as a dict of a `model` table's columns."""
    for name, value in fit_to_columns(model, values).items():
        if value is None:
            continue
        if forward or row.get(name) in (None, [], ""):
            row[name] = value


def merge_fields(row: Any, values: dict[str, Any], *, forward: bool) -> bool:
    """Copy values onto a row: all known values when moving forward, else only into empty fields.

    Strings are cut to their column's length first. Returns whether any field changed.
    """
    changed = False
    for name, value in fit_to_columns(type(row), values).items():
        if value is None:
            continue
        current = getattr(row, name)
        if current != value and (forward or current in (None, [], "")):
            setattr(row, name, value)
            changed = True
    return changed


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


def upsert_run(*, session: Session, facts: RunFacts) -> WorkflowRun:
    """Create or update a run's own fields; later values win, since they do not regress."""
    run = get_run(session, facts.id)
    if run is None:
        run = WorkflowRun(id=facts.id, repo=facts.repo)
        prefetch.note_row_stored(session, run)
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
    run = get_run(session, run_id)
    if run is None:
        run = WorkflowRun(id=run_id, repo=repo)
        prefetch.note_row_stored(session, run)
    if merge_fields(run, fields, forward=False) or run not in session:
        session.add(run)
    return run


def get_run(session: Session, run_id: int) -> WorkflowRun | None:
    """Return a stored run, or one created in this transaction."""
    return prefetch.get_row(session, WorkflowRun, run_id)


def upsert_attempt(*, session: Session, facts: AttemptFacts) -> tuple[RunAttempt, bool]:
    """Create or merge a run attempt; return it and whether this event completed it."""
    attempt = session.get(RunAttempt, (facts.run_id, facts.attempt))
    if attempt is None:
        attempt = RunAttempt(run_id=facts.run_id, attempt=facts.attempt)
        prefetch.note_attempt_stored(session, facts.run_id, facts.attempt)
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
    """Return a stored run attempt; no query when the batch's prefetch proved it absent."""
    if prefetch.is_attempt_known_absent(session, run_id, attempt):
        return None
    return session.get(RunAttempt, (run_id, attempt))
