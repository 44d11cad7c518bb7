"""Read, in a few queries, the stored facts a batch of deliveries is about to update.

Handlers look rows up one at a time with `session.get`. A row already in the session's
identity map costs no query, while a miss costs a SELECT and, before it, an autoflush of the
pending changes. Reading the batch's installations, repositories, runs and attempts up front
turns those lookups into hits. It is only a cache warm-up: a row it misses is still found, or
created, by the handler.

Jobs and steps are written with SQLAlchemy Core (storage.jobs), so they are read here as plain
rows into a `BatchFacts` kept in `session.info`, and so is the list of run attempts known not
to exist. Writers keep it current. After a savepoint rollback the worker calls `forget`, since
the cache may then hold rows the database no longer has.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import ORMExecuteState
from sqlmodel import Session

from storage.models import Delivery, Installation, Job, Repository, RunAttempt, Step, WorkflowRun

RowT = TypeVar("RowT")
BATCH_FACTS_KEY = "release_bot.batch_facts"
JOB = Job.__table__  # type: ignore[attr-defined]
STEP = Step.__table__  # type: ignore[attr-defined]

# Built once: building a statement cost about as much as running it for a small batch.
ROW_QUERIES: dict[type[Any], Any] = {
    model: select(model).where(column.in_(bindparam("ids", expanding=True)))  # type: ignore[attr-defined]
    for model, column in (
        (Installation, Installation.id),
        (Repository, Repository.id),
        (WorkflowRun, WorkflowRun.id),
        (RunAttempt, RunAttempt.run_id),
    )
}
JOB_QUERY = select(JOB.c).where(JOB.c.id.in_(bindparam("ids", expanding=True)))
STEP_QUERY = select(STEP.c).where(STEP.c.job_id.in_(bindparam("ids", expanding=True)))

# Past this many keys per table the IN lists grow long for little gain.
MAX_KEYS = 500


# The largest id a BIGINT column holds. A larger one in a payload would fail the whole batch's
# query (OverflowError on SQLite, out of range on PostgreSQL) before the handler rejects it.
MAX_ID = 2**63 - 1


def is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def nested_id(payload: dict[str, Any], key: str, field: str = "id") -> int | None:
    value = payload.get(key)
    found = value.get(field) if isinstance(value, dict) else None
    return found if is_id(found) else None


def collect_keys(payloads: Iterable[dict[str, Any]]) -> dict[str, set[int]]:
    """Return the installation, repository, run and job ids that the payloads name."""
    keys: dict[str, set[int]] = {"installation": set(), "repository": set(), "run": set(), "job": set()}
    for payload in payloads:
        for kind in ("installation", "repository"):
            found = nested_id(payload, kind)
            if found is not None:
                keys[kind].add(found)
        for found in (nested_id(payload, "workflow_run"), nested_id(payload, "workflow_job", "run_id")):
            if found is not None:
                keys["run"].add(found)
        job_id = nested_id(payload, "workflow_job")
        if job_id is not None:
            keys["job"].add(job_id)
    return keys


def prefetch_facts(*, session: Session, claimed: Sequence[Delivery]) -> list[Any]:
    """Load the stored rows the claimed deliveries refer to; return them.

    The session's identity map holds clean rows by weak reference, so the caller keeps the
    returned list for as long as the batch runs.
    """
    facts = BatchFacts()
    for delivery in claimed:
        try:
            payload = json.loads(delivery.body)
        except ValueError:
            continue  # the handler reports it
        if isinstance(payload, dict) and delivery.id is not None:
            facts.payloads[delivery.id] = payload
    keys = collect_keys(facts.payloads.values())

    queries = (
        (Installation, keys["installation"]),
        (Repository, keys["repository"]),
        (WorkflowRun, keys["run"]),
        (RunAttempt, keys["run"]),
    )
    rows: list[Any] = []
    for model, ids in queries:
        if ids and len(ids) <= MAX_KEYS:
            rows.extend(session.scalars(ROW_QUERIES[model], {"ids": sorted(ids)}).all())

    for model, ids in queries[:3]:
        if ids and len(ids) <= MAX_KEYS:
            known = facts.rows.setdefault(model, dict.fromkeys(ids))
            known.update((row.id, row) for row in rows if isinstance(row, model))
    if keys["run"] and len(keys["run"]) <= MAX_KEYS:
        facts.attempt_runs = set(keys["run"])
        facts.attempts = {(row.run_id, row.attempt) for row in rows if isinstance(row, RunAttempt)}
    job_ids = sorted(keys["job"])
    if job_ids and len(job_ids) <= MAX_KEYS:
        facts.jobs = dict.fromkeys(job_ids)
        facts.steps = {job_id: {} for job_id in job_ids}
        for job_row in session.execute(JOB_QUERY, {"ids": job_ids}).mappings():
            facts.jobs[job_row["id"]] = dict(job_row)
        for step_row in session.execute(STEP_QUERY, {"ids": job_ids}).mappings():
            facts.steps[step_row["job_id"]][step_row["number"]] = dict(step_row)
    session.info[BATCH_FACTS_KEY] = facts
    if not event.contains(session, "do_orm_execute", flush_before_query):
        event.listen(session, "do_orm_execute", flush_before_query)
    return rows


@dataclass
class BatchFacts:
    """Rows of the batch's jobs and steps, and its run attempts, as they are in the transaction.

    `payloads` maps each claimed delivery's parsed body by delivery row id. `rows` maps, per
    model (installations, repositories, runs), each prefetched id to its object, or to None
    while it is not stored. `jobs` maps each prefetched job id to its row, or to None while the
    job is not stored. `steps` maps the same ids to their steps by number. A run in `attempt_runs` had all its attempts
    read, so an attempt of it that is not in `attempts` does not exist.
    """

    payloads: dict[int, dict[str, Any]] = field(default_factory=dict)
    rows: dict[type[Any], dict[int, Any]] = field(default_factory=dict)
    jobs: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    steps: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    attempt_runs: set[int] = field(default_factory=set)
    attempts: set[tuple[int, int]] = field(default_factory=set)
    # Metric points validated but not written yet (storage.metrics.record_metric).
    pending_points: list[dict[str, Any]] = field(default_factory=list)
    # Rows queued by `queue_rows`, per table: the upsert statement and the rows by key.
    pending_rows: dict[str, tuple[Any, dict[tuple[Any, ...], dict[str, Any]]]] = field(default_factory=dict)


def batch_facts(session: Session) -> BatchFacts | None:
    """Return the batch's cached facts, or None outside a worker batch or after `forget`."""
    return session.info.get(BATCH_FACTS_KEY)


def forget(session: Session) -> None:
    """Drop the cached facts, so that later lookups of the batch read the database."""
    session.info.pop(BATCH_FACTS_KEY, None)


def cached_payload(session: Session, delivery: Delivery) -> dict[str, Any] | None:
    """Return a claimed delivery's body as parsed by the prefetch, or None."""
    facts = batch_facts(session)
    if facts is None or delivery.id is None:
        return None
    return facts.payloads.get(delivery.id)


def get_row(session: Session, model: type[RowT], key: int) -> RowT | None:
    """Return a stored installation, repository or run, or one created in this transaction.

    A key the batch's prefetch read costs no query. `session.get` does not
    find a row created in the transaction but not flushed yet: it would flush and query again.
    """
    facts = batch_facts(session)
    known = facts.rows.get(model) if facts is not None else None
    if known is not None and key in known:
        return known[key]  # type: ignore[no-any-return]
    return session.get(model, key)


def note_row_stored(session: Session, row: Any) -> None:
    """Record an installation, repository or run created in this batch, for `get_row`."""
    facts = batch_facts(session)
    if facts is not None:
        facts.rows.setdefault(type(row), {})[row.id] = row


def queue_rows(session: Session, statement: Any, table_name: str, key: Sequence[str], rows: list[dict[str, Any]]) -> bool:
    """Hold upserts of whole rows until the batch's next query or its end; False outside a batch.

    On PostgreSQL every statement is a round trip to the server, so the batch's jobs and steps
    are written with one statement per table. A later row with the same key replaces the
    earlier one. Any query through the session writes the queued rows first (`flush_before_query`),
    so no reader in the transaction misses them.
    """
    facts = batch_facts(session)
    if facts is None:
        return False
    _, queued = facts.pending_rows.setdefault(table_name, (statement, {}))
    for row in rows:
        queued[tuple(row[name] for name in key)] = row
    return True


def flush_pending_rows(session: Session) -> None:
    """Write the rows queued by `queue_rows`."""
    facts = batch_facts(session)
    if facts is None or not facts.pending_rows:
        return
    pending, facts.pending_rows = facts.pending_rows, {}
    connection = session.connection()
    for statement, queued in pending.values():
        connection.execute(statement, list(queued.values()))


def flush_before_query(state: ORMExecuteState) -> None:
    """Session hook: write the queued rows before any statement the session executes."""
    flush_pending_rows(state.session)  # type: ignore[arg-type]


def is_attempt_known_absent(session: Session, run_id: int, attempt: int) -> bool:
    """Tell whether the batch's prefetch proved that a run attempt is not stored."""
    facts = batch_facts(session)
    return facts is not None and run_id in facts.attempt_runs and (run_id, attempt) not in facts.attempts


def note_attempt_stored(session: Session, run_id: int, attempt: int) -> None:
    """Record that a run attempt now exists, for `is_attempt_known_absent`."""
    facts = batch_facts(session)
    if facts is not None:
        facts.attempts.add((run_id, attempt))
