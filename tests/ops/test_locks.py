"""Job locks and per-period records, with two engines standing in for two bot processes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.scheduler import ScheduledJob, run_locked
from storage import locks
from storage.db import create_db_engine, session_scope

T0 = datetime(2024, 6, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def engines(database_url: str) -> Iterator[tuple[Any, Any]]:
    first, second = create_db_engine(database_url), create_db_engine(database_url)
    yield first, second
    first.dispose()
    second.dispose()


def test_lock_excludes_second_process(engines: tuple[Any, Any]) -> None:
    first, second = engines
    with locks.job_lock(first, "job:digest") as held:
        assert held
        with locks.job_lock(second, "job:digest") as other:
            assert not other
        with locks.job_lock(second, "job:retention") as unrelated:
            assert unrelated
    with locks.job_lock(second, "job:digest") as later:
        assert later


def test_lease_of_dead_holder_expires(engines: tuple[Any, Any]) -> None:
    first, _ = engines
    lease = timedelta(seconds=60)
    assert locks.acquire_lease(first, "job:digest", lease=lease, holder="dead", now=T0)
    assert not locks.acquire_lease(first, "job:digest", lease=lease, holder="alive", now=T0 + timedelta(seconds=59))
    assert locks.acquire_lease(first, "job:digest", lease=lease, holder="alive", now=T0 + timedelta(seconds=60, microseconds=1))
    # The holder that lost its lease cannot take it back while the new one is valid.
    assert not locks.acquire_lease(first, "job:digest", lease=lease, holder="dead", now=T0 + timedelta(seconds=61))


def test_lease_released_after_run(engines: tuple[Any, Any]) -> None:
    first, _ = engines
    if first.dialect.name != "sqlite":
        pytest.skip("lease rows are the SQLite lock")
    with locks.job_lock(first, "job:digest") as held:
        assert held
        with session_scope(first) as session:
            assert session.get(locks.JobLease, "job:digest") is not None
    with session_scope(first) as session:
        assert session.get(locks.JobLease, "job:digest") is None


def test_advisory_lock_freed_when_connection_dies(engines: tuple[Any, Any]) -> None:
    first, second = engines
    if first.dialect.name != "postgresql":
        pytest.skip("advisory locks are the PostgreSQL lock")
    key = locks.advisory_key("job:digest")
    holder = first.connect()
    assert holder.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
    pid = holder.scalar(text("SELECT pg_backend_pid()"))
    with locks.job_lock(second, "job:digest") as blocked:
        assert not blocked
    # What SIGKILL of the holding process does to its connection.
    with second.connect() as admin:
        # The timeout makes the call wait until the backend has exited and released its locks.
        admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        admin.commit()
    holder.invalidate()
    with locks.job_lock(second, "job:digest") as freed:
        assert freed


def test_period_claimed_once(engines: tuple[Any, Any]) -> None:
    first, second = engines
    with session_scope(first) as session:
        assert not locks.has_period(session=session, job="digest", period="2024-06-04")
        assert locks.claim_period(session=session, job="digest", period="2024-06-04", now=T0)
    with session_scope(second) as session:
        assert locks.has_period(session=session, job="digest", period="2024-06-04")
        assert not locks.claim_period(session=session, job="digest", period="2024-06-04", now=T0)
        assert locks.claim_period(session=session, job="digest", period="2024-06-05", now=T0)
    with session_scope(first) as session:
        assert locks.list_periods(session=session, job="digest") == ["2024-06-04", "2024-06-05"]


def test_run_locked_skips_held_job(engines: tuple[Any, Any], settings: Settings) -> None:
    first, second = engines
    calls: list[str] = []
    job = ScheduledJob(id="probe", function=lambda engine, _settings: calls.append("ran"), interval_seconds=60, first_delay_seconds=0)
    with locks.job_lock(first, "job:probe") as held:
        assert held
        assert run_locked(job, second, settings) == "skipped"
    assert run_locked(job, second, settings) == "ok"
    assert calls == ["ran"]


def test_run_locked_logs_failure(engines: tuple[Any, Any], settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    first, _ = engines

    def broken(engine: Any, _settings: Settings) -> None:
        raise RuntimeError("boom")

    job = ScheduledJob(id="broken", function=broken, interval_seconds=60, first_delay_seconds=0)
    assert run_locked(job, first, settings) == "failed"
    failures = [record for record in caplog.records if record.getMessage() == "scheduled job failed"]
    assert len(failures) == 1
    assert failures[0].job == "broken"  # type: ignore[attr-defined]
    # The lock was released despite the error.
    with locks.job_lock(first, "job:broken") as held:
        assert held
