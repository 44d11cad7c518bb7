"""Read, in a few queries, the stored facts a batch of deliveries is about to update.

Handlers look rows up one at a time with `session.get`. A row already in the session's
identity map costs no query, while a miss costs a SELECT and, before it, an autoflush of the
pending changes. Reading the batch's installations, repositories, runs, attempts and jobs up
front turns those lookups into hits. It is only a cache warm-up: a row it misses is still
found, or created, by the handler.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from storage.models import Delivery, Installation, Job, Repository, RunAttempt, WorkflowRun

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
    payloads = []
    for delivery in claimed:
        try:
            payload = json.loads(delivery.body)
        except ValueError:
            continue  # the handler reports it
        if isinstance(payload, dict):
            payloads.append(payload)
    keys = collect_keys(payloads)

    queries = (
        (Installation, Installation.id, keys["installation"]),
        (Repository, Repository.id, keys["repository"]),
        (WorkflowRun, WorkflowRun.id, keys["run"]),
        (RunAttempt, RunAttempt.run_id, keys["run"]),
        (Job, Job.id, keys["job"]),
    )
    rows: list[Any] = []
    for model, column, ids in queries:
        if ids and len(ids) <= MAX_KEYS:
            rows.extend(session.scalars(select(model).where(column.in_(sorted(ids)))).all())  # type: ignore[attr-defined]
    return rows
