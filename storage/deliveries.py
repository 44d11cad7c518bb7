"""Query functions for the inbox of webhook deliveries."""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.engine import Dialect
from sqlmodel import Session

from storage.db import upsert_insert
from storage.models import Delivery, DeliveryStatus
from storage.types import utc_now

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")


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

    `session` is an ORM session or a Core connection; the webhook endpoint passes a connection.
    Each row contains the keyword arguments of `insert_delivery`. A delivery id already stored,
    or repeated earlier in `rows`, counts as not new, as in `insert_delivery`.
    """
    connection = session.connection() if isinstance(session, Session) else session

    def execute(sql: str, parameters: tuple[Any, ...]) -> Sequence[Any]:
        return connection.exec_driver_sql(sql, parameters).all()

    return DeliveryInsert.for_dialect(connection.dialect).run(execute, rows)


def insert_deliveries_unless_locked(
    *, dbapi_connection: sqlite3.Connection, dialect: Dialect, rows: Sequence[dict[str, Any]]
) -> list[bool] | None:
    """Insert deliveries in a transaction of their own on a SQLite driver connection.

    Returns None, having written nothing, when the write lock stayed taken for the
    connection's whole busy timeout. The webhook endpoint calls this on its event loop with a
    busy timeout of 0, because a wait there would stall every request.
    """
    try:
        dbapi_connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
            return None
        raise
    try:
        results = DeliveryInsert.for_dialect(dialect).run(
            lambda sql, parameters: dbapi_connection.execute(sql, parameters).fetchall(), rows
        )
    except BaseException:
        dbapi_connection.execute("ROLLBACK")
        raise
    dbapi_connection.execute("COMMIT")
    return results


async def insert_deliveries_async(
    *, connection: psycopg.AsyncConnection[Any], dialect: Dialect, rows: Sequence[dict[str, Any]]
) -> list[bool]:
    """Insert deliveries in one transaction on an asyncio psycopg connection to PostgreSQL."""
    plan = DeliveryInsert.for_dialect(dialect).plan(rows)
    inserted: set[str] = set()
    async with connection.transaction():
        for sql, parameters in plan.statements:
            cursor = await connection.execute(sql, parameters)
            inserted.update(row[0] for row in await cursor.fetchall())
    return plan.results(inserted)


def power_of_two_chunks(rows: list[T]) -> Iterator[list[T]]:
    """Split rows into chunks of 128, 64, ..., 2 and 1 rows, the largest first.

    Each chunk size has its own SQL text, and the sqlite3 module keeps up to 128 prepared
    statements per connection. With one SQL text per batch size, a connection kept a prepared
    statement for each size it had seen, and the bot's peak RSS over 9,000 deliveries from 32
    connections was 125-128 MB. With these chunks it was 110-111 MB.
    """
    start = 0
    size = 128
    while start < len(rows):
        while size > len(rows) - start:
            size //= 2
        yield rows[start : start + size]
        start += size


@dataclass
class InsertPlan:
    """The statements of one multi-row delivery insert, and how to read their results."""

    rows: Sequence[dict[str, Any]]
    first_rows: dict[str, dict[str, Any]]
    statements: list[tuple[str, tuple[Any, ...]]]

    def results(self, inserted: set[str]) -> list[bool]:
        """Return, per row, whether it was new, given the delivery ids the statements returned."""
        results = []
        for row in self.rows:
            delivery_id = row["delivery_id"]
            results.append(self.first_rows.get(delivery_id) is row and delivery_id in inserted)
        return results


class DeliveryInsert:
    """A multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING` of deliveries, in driver SQL.

    The webhook endpoint stores every delivery through this statement. Driver SQL skips
    SQLAlchemy's per-row parameter processing. The column values are converted here as the
    model's column types would store them: the headers as JSON text and the time through the
    column type's own bind processor.
    """

    COLUMNS = (
        "delivery_id", "event", "action", "installation_id", "repository", "headers", "body",
        "received_at", "status", "attempts", "error",
    )

    def __init__(self, dialect: Dialect) -> None:
        table = Delivery.__table__  # type: ignore[attr-defined]
        self.convert_time = table.c.received_at.type.bind_processor(dialect)
        if dialect.name == "postgresql":
            # psycopg sends str parameters as text, which a json column takes only by a cast.
            placeholders = ["%s"] * len(self.COLUMNS)
            placeholders[self.COLUMNS.index("headers")] = "%s::json"
        else:
            placeholders = ["?"] * len(self.COLUMNS)
        self.values_row = "(" + ", ".join(placeholders) + ")"
        self.prefix = f"INSERT INTO delivery ({', '.join(self.COLUMNS)}) VALUES "
        self.suffix = " ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id"
        self._sql_by_count: dict[int, str] = {}

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> DeliveryInsert:
        """Return the statement of a dialect, built once per dialect object."""
        statement = DELIVERY_INSERTS.get(dialect)
        if statement is None:
            statement = DELIVERY_INSERTS[dialect] = cls(dialect)
        return statement

    def run(
        self, execute: Callable[[str, tuple[Any, ...]], Sequence[Any]], rows: Sequence[dict[str, Any]]
    ) -> list[bool]:
        """Insert the rows with `execute(sql, parameters)`; return, per row, whether it was new."""
        plan = self.plan(rows)
        inserted: set[str] = set()
        for sql, parameters in plan.statements:
            inserted.update(row[0] for row in execute(sql, parameters))
        return plan.results(inserted)

    def plan(self, rows: Sequence[dict[str, Any]]) -> InsertPlan:
        """Return the statements that insert the rows, one per chunk, each row once."""
        first_rows: dict[str, dict[str, Any]] = {}
        for row in rows:
            first_rows.setdefault(row["delivery_id"], row)
        received_at = self.convert_time(utc_now()) if self.convert_time else utc_now()
        statements = [
            self.build(chunk, received_at) for chunk in power_of_two_chunks(list(first_rows.values()))
        ]
        return InsertPlan(rows=rows, first_rows=first_rows, statements=statements)

    def build(self, rows: Sequence[dict[str, Any]], received_at: Any) -> tuple[str, tuple[Any, ...]]:
        """Return the SQL for `len(rows)` rows and its flat tuple of parameters."""
        sql = self._sql_by_count.get(len(rows))
        if sql is None:
            sql = self._sql_by_count[len(rows)] = (
                self.prefix + ", ".join([self.values_row] * len(rows)) + self.suffix
            )
        parameters: list[Any] = []
        for row in rows:
            parameters += (
                row["delivery_id"],
                row["event"],
                row["action"],
                row["installation_id"],
                row["repository"],
                orjson.dumps(row["headers"]).decode(),
                row["body"],
                received_at,
                row.get("status", DeliveryStatus.PENDING).value,
                0,
                row.get("error"),
            )
        return sql, tuple(parameters)


DELIVERY_INSERTS: weakref.WeakKeyDictionary[Dialect, DeliveryInsert] = weakref.WeakKeyDictionary()


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


def get_stored_body(*, session: Session, delivery_id: str) -> bytes | None:
    """Return the body stored for a delivery id, or None."""
    return session.scalar(select(Delivery.body).where(Delivery.delivery_id == delivery_id))


def get_delivery(*, session: Session, delivery_id: str) -> Delivery | None:
    """Return a stored delivery by its `X-GitHub-Delivery` id."""
    return session.scalars(select(Delivery).where(Delivery.delivery_id == delivery_id)).first()
