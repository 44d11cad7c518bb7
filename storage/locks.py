"""Database locks for scheduled jobs, and per-period records that make a job's result unique.

Several bot processes share one database, and each runs the same scheduler, so every job run
first takes a lock named after the job:

- PostgreSQL: `pg_try_advisory_lock` on a dedicated connection held for the whole run. The
  server releases the lock when that connection closes, so a killed process frees it at once.
- SQLite: a `job_lease` row with an expiry. A heartbeat thread extends it while the job runs;
  a process that dies stops extending it, and the lease expires within its TTL (60 s by default).

A lock stops two runs from overlapping, not two runs of the same period at different moments.
A job that must produce one result per period (one digest a day) also records the period in
`job_run`: either in the same transaction as its result (`claim_period`), or after idempotent
work has finished (`has_period` before, `claim_period` after).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Field, Session, SQLModel

from storage.db import session_scope, upsert_insert
from storage.models import metadata  # noqa: F401  (sets the naming convention before these tables)
from storage.types import UTCDateTime, utc_now

logger = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=60)

# Identifies this process in lease rows: host, pid and a random part, because a restarted
# container can reuse both the host name and the pid.
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobLease(SQLModel, table=True):
    """The SQLite lock of a scheduled job: who holds it and until when."""

    __tablename__ = "job_lease"

    name: str = Field(primary_key=True, max_length=100)
    holder: str = Field(max_length=200)
    acquired_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class JobRun(SQLModel, table=True):
    """A period (such as a day) for which a scheduled job has produced its result."""

    __tablename__ = "job_run"

    job: str = Field(primary_key=True, max_length=100)
    period: str = Field(primary_key=True, max_length=100)
    holder: str = Field(max_length=200)
    finished_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


def advisory_key(name: str) -> int:
    """Return a stable signed 64-bit key for `pg_try_advisory_lock` from a job name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def job_lock(engine: Engine, name: str, *, lease: timedelta = DEFAULT_LEASE) -> Iterator[bool]:
    """Try to take the lock of job `name` without waiting; yield whether this process holds it."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name) as acquired:
            yield acquired
        return
    with _lease_lock(engine, name, lease) as acquired:
        yield acquired


@contextmanager
def _advisory_lock(engine: Engine, name: str) -> Iterator[bool]:
    key = advisory_key(name)
    # AUTOCOMMIT so the connection does not sit "idle in transaction" while the job runs; the
    # advisory lock belongs to the session, not to a transaction.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        acquired = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                except OperationalError:
                    # The connection is gone, and the server released the lock with it.
                    connection.invalidate()
                    logger.warning("job lock connection lost", extra={"job": name})


@contextmanager
def _lease_lock(engine: Engine, name: str, lease: timedelta) -> Iterator[bool]:
    # A holder per acquisition, so two schedulers in one process also exclude each other.
    holder = f"{PROCESS_ID}:{uuid.uuid4().hex[:8]}"
    if not acquire_lease(engine, name, lease=lease, holder=holder):
        yield False
        return
    stop = threading.Event()
    heartbeat = threading.Thread(
        target=_renew_until_stopped, args=(engine, name, holder, lease, stop), name=f"lease-{name}", daemon=True
    )
    heartbeat.start()
    try:
        yield True
    finally:
        stop.set()
        heartbeat.join()
        release_lease(engine, name, holder=holder)


def _renew_until_stopped(engine: Engine, name: str, holder: str, lease: timedelta, stop: threading.Event) -> None:
    interval = lease.total_seconds() / 3
    while not stop.wait(interval):
        try:
            if not acquire_lease(engine, name, lease=lease, holder=holder):
                logger.warning("job lease lost to another process", extra={"job": name})
                return
        except OperationalError as exc:
            logger.warning("job lease renewal failed: %s", exc.orig, extra={"job": name})


def acquire_lease(
    engine: Engine,
    name: str,
    *,
    lease: timedelta = DEFAULT_LEASE,
    holder: str = PROCESS_ID,
    now: datetime | None = None,
) -> bool:
    """Take or extend the lease row of `name` unless another holder's lease is still valid."""
    now = now or utc_now()
    with session_scope(engine) as session:
        row = session.get(JobLease, name)
        if row is not None and row.holder != holder and row.expires_at > now:
            return False
        if row is None:
            row = JobLease(name=name, holder=holder, acquired_at=now, expires_at=now + lease)
        elif row.holder != holder:
            row.holder = holder
            row.acquired_at = now
        row.expires_at = now + lease
        session.add(row)
    return True


def release_lease(engine: Engine, name: str, *, holder: str = PROCESS_ID) -> None:
    """Delete the lease row of `name` if `holder` still holds it."""
    with session_scope(engine) as session:
        session.execute(delete(JobLease).where(JobLease.name == name, JobLease.holder == holder))


def has_period(*, session: Session, job: str, period: str) -> bool:
    """Return whether `job` has already recorded its result for `period`."""
    return session.get(JobRun, (job, period)) is not None


def claim_period(
    *, session: Session, job: str, period: str, holder: str = PROCESS_ID, now: datetime | None = None
) -> bool:
    """Record `period` as done for `job` in the caller's transaction; return False if it already was."""
    values = {"job": job, "period": period, "holder": holder, "finished_at": now or utc_now()}
    insert = upsert_insert(session.get_bind().dialect.name)
    statement = insert(JobRun).values(**values).on_conflict_do_nothing(index_elements=["job", "period"])
    # SQLAlchemy 2.1 reports rowcount -1 for an INSERT on PostgreSQL unless asked to keep it.
    result = session.execute(statement.execution_options(preserve_rowcount=True))
    return result.rowcount == 1


def list_periods(*, session: Session, job: str) -> list[str]:
    """Return the periods `job` has recorded, oldest first."""
    return list(session.scalars(select(JobRun.period).where(JobRun.job == job).order_by(JobRun.period)))
