"""Query functions for the inbox of webhook deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session

from storage.db import upsert_insert
from storage.models import Delivery, DeliveryStatus
from storage.types import utc_now


def insert_delivery(
    *,
    session: Session,
    delivery_id: str,
    event: str,
    action: str | None,
    installation_id: int | None,
    repository: str | None,
    headers: dict[str, str],
    body: bytes,
    status: DeliveryStatus = DeliveryStatus.PENDING,
    error: str | None = None,
) -> bool:
    """Insert a delivery unless one with the same delivery id exists; return whether it was new."""
    values = {
        "delivery_id": delivery_id,
        "event": event,
        "action": action,
        "installation_id": installation_id,
        "repository": repository,
        "headers": headers,
        "body": body,
        "received_at": utc_now(),
        "status": status.value,
        "attempts": 0,
        "error": error,
    }
    insert = upsert_insert(session.get_bind().dialect.name)
    statement = insert(Delivery).values(**values).on_conflict_do_nothing(
        index_elements=["delivery_id"]
    )
    # Without preserve_rowcount, SQLAlchemy 2.1 reports -1 for this INSERT on PostgreSQL.
    result = session.execute(statement.execution_options(preserve_rowcount=True))
    return result.rowcount == 1


def insert_deliveries(
    *, session: Session | Connection, rows: Sequence[dict[str, Any]]
) -> list[bool]:
    """Insert several deliveries in one statement; return, per row, whether it was new.

    `session` is an ORM session or a Core connection. The webhook endpoint passes a connection,
    because on SQLite a session doubled the CPU time of a one-row batch. Each row contains the
    keyword arguments of `insert_delivery`. A delivery id already stored, or repeated earlier in
    `rows`, counts as not new, as in `insert_delivery`.
    """
    received_at = utc_now()
    first_rows: dict[str, dict[str, Any]] = {}
    for row in rows:
        first_rows.setdefault(row["delivery_id"], row)
    if not first_rows:
        return []
    parameters = [
        {
            "delivery_id": row["delivery_id"],
            "event": row["event"],
            "action": row["action"],
            "installation_id": row["installation_id"],
            "repository": row["repository"],
            "headers": row["headers"],
            "body": row["body"],
            "received_at": received_at,
            "status": row.get("status", DeliveryStatus.PENDING).value,
            "attempts": 0,
            "error": row.get("error"),
        }
        for row in first_rows.values()
    ]
    bind = session.get_bind() if isinstance(session, Session) else session
    # With several parameter sets and RETURNING, SQLAlchemy sends multi-row INSERT statements
    # ("insertmanyvalues") on both SQLite and PostgreSQL.
    inserted = set(session.execute(insert_statement(bind.dialect.name), parameters).scalars())

    results = []
    for row in rows:
        delivery_id = row["delivery_id"]
        is_new = first_rows.get(delivery_id) is row and delivery_id in inserted
        results.append(is_new)
    return results


@cache
def insert_statement(dialect_name: str) -> Insert:
    """Return the INSERT ... ON CONFLICT DO NOTHING RETURNING delivery_id statement of a dialect.

    The statement is built once per dialect instead of once per batch.
    """
    table = Delivery.__table__  # type: ignore[attr-defined]
    insert = upsert_insert(dialect_name)
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["delivery_id"])
        .returning(table.c.delivery_id)
    )


CLAIM_PENDING = (
    select(Delivery)
    .where(Delivery.status == DeliveryStatus.PENDING.value)
    .order_by(Delivery.id)  # type: ignore[arg-type]
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


def claim_pending(*, session: Session, limit: int) -> Sequence[Delivery]:
    """Lock and return the oldest pending deliveries.

    On PostgreSQL the rows stay locked (`FOR UPDATE SKIP LOCKED`) until the session's
    transaction ends, so another replica's worker skips them. SQLite ignores the clause;
    its IMMEDIATE transactions already serialise writers.
    """
    return session.scalars(CLAIM_PENDING, {"limit": limit}).all()


def mark_delivery(
    *, session: Session, delivery: Delivery, status: DeliveryStatus, error: str | None = None
) -> None:
    """Record the outcome of processing a delivery."""
    delivery.status = status.value
    delivery.error = error
    delivery.processed_at = utc_now()
    delivery.attempts += 1
    session.add(delivery)


def reset_for_replay(*, session: Session, delivery_id: str) -> bool:
    """Put a stored delivery back in the pending state; return whether it exists."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.delivery_id == delivery_id)
        .values(status=DeliveryStatus.PENDING.value, error=None)
    )
    return bool(result.rowcount)


def count_by_status(*, session: Session) -> dict[str, int]:
    """Return the number of stored deliveries in each status."""
    rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    return {status: count for status, count in rows}


def oldest_pending_received_at(*, session: Session) -> datetime | None:
    """Return when the oldest pending delivery arrived, for the processing lag."""
    return session.scalar(
        select(func.min(Delivery.received_at)).where(
            Delivery.status == DeliveryStatus.PENDING.value
        )
    )


def get_delivery(*, session: Session, delivery_id: str) -> Delivery | None:
    """Return a stored delivery by its `X-GitHub-Delivery` id."""
    return session.scalars(select(Delivery).where(Delivery.delivery_id == delivery_id)).first()
