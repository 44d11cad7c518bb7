"""Group commit of webhook deliveries, the SQLite write gate, and worker batches that yield."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import ProgrammingError
from sqlmodel import Session

from bot import ingest
from bot import worker as worker_module
from bot.config import Settings
from bot.database_errors import classify_database_error
from bot.ingest import DeliveryWriter
from bot.worker import process_batch
from storage import deliveries
from storage.db import SQLiteWriteGate, create_db_engine, read_session, session_scope, sqlite_write_gate
from storage.models import Delivery, DeliveryStatus

T = TypeVar("T")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


def delivery_row(delivery_id: str, **overrides: Any) -> dict[str, Any]:
    """Return the arguments of `insert_delivery` for a small workflow_job delivery."""
    payload = {"action": "queued", "workflow_job": {"id": 1, "run_id": 2}}
    row = {
        "delivery_id": delivery_id,
        "event": "workflow_job",
        "action": "queued",
        "installation_id": 7,
        "repository": "octo/repo",
        "headers": {"x-github-event": "workflow_job"},
        "body": json.dumps(payload).encode(),
    }
    return {**row, **overrides}


def run_and_close(writer: DeliveryWriter, store: Callable[[], Awaitable[T]]) -> T:
    """Run `store()` on a new event loop, then close the writer on that loop."""

    async def run() -> T:
        try:
            return await store()
        finally:
            await writer.aclose()

    return asyncio.run(run())


def count_deliveries(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Delivery)) or 0


def test_insert_deliveries_new_and_duplicate(engine: Engine) -> None:
    with session_scope(engine) as session:
        deliveries.insert_delivery(session=session, **delivery_row("stored-1"))

    rows = [delivery_row("stored-1"), delivery_row("new-1"), delivery_row("new-1")]
    with session_scope(engine) as session:
        results = deliveries.insert_deliveries(session=session, rows=rows)

    assert results == [False, True, False]
    assert count_deliveries(engine) == 2


def test_insert_deliveries_keeps_status_and_error(engine: Engine) -> None:
    row = delivery_row("invalid-1", status=DeliveryStatus.INVALID, error="the body is not valid JSON")
    with session_scope(engine) as session:
        deliveries.insert_deliveries(session=session, rows=[row])

    with Session(engine) as session:
        stored = deliveries.get_delivery(session=session, delivery_id="invalid-1")
    assert stored is not None
    assert stored.status == DeliveryStatus.INVALID.value
    assert stored.error == "the body is not valid JSON"
    assert stored.headers == {"x-github-event": "workflow_job"}


def test_writer_stores_concurrent_rows_in_one_batch(engine: Engine) -> None:
    writer = DeliveryWriter(engine)
    ids = [f"concurrent-{index}" for index in range(20)]

    async def store_all() -> list[bool]:
        return list(await asyncio.gather(*(writer.store(delivery_row(one)) for one in ids)))

    results = run_and_close(writer, store_all)

    assert results == [True] * 20
    # One batch stamps all its rows with one time.
    with Session(engine) as session:
        times = session.scalars(select(Delivery.received_at)).all()
    assert len(times) == 20
    assert len(set(times)) == 1


def test_writer_waits_out_another_process_lock(database_url: str, engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("only SQLite has a database-wide write lock")
    writer = DeliveryWriter(engine)
    # A separate driver connection stands for another process: the gate does not see it.
    other = sqlite3.connect(engine.url.database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.3, other.execute, args=("COMMIT",))

    async def store_one() -> bool:
        released.start()
        return await writer.store(delivery_row("locked-1"))

    assert run_and_close(writer, store_one) is True
    other.close()
    assert count_deliveries(engine) == 1


def test_writer_lock_timeout_reports_locked(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("only SQLite has a database-wide write lock")
    # The thread's connection waits this long for the lock instead of 30 s.
    monkeypatch.setattr(ingest, "SQLITE_BUSY_TIMEOUT_MS", 50)
    writer = DeliveryWriter(engine)
    other = sqlite3.connect(engine.url.database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    async def store_one() -> bool:
        return await writer.store(delivery_row("locked-out-1"))

    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            run_and_close(writer, store_one)
    finally:
        other.close()

    assert str(caught.value).startswith("database is locked: another process kept SQLite's write lock for 50 ms")
    problem = classify_database_error(caught.value)
    assert problem is not None
    assert problem.kind == "locked"
    assert count_deliveries(engine) == 0


def test_writer_commits_durably_on_sqlite(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's commits wait for the WAL flush by default")
    writer = DeliveryWriter(engine)

    async def store_one() -> bool:
        return await writer.store(delivery_row("durable-1"))

    assert run_and_close(writer, store_one) is True
    inbox = writer._connection_for_loop()
    # 2 is FULL: the commit waits until the write-ahead log is on disk.
    assert inbox.execute("PRAGMA synchronous").fetchone() == (2,)
    assert inbox.execute("PRAGMA busy_timeout").fetchone() == (0,)
    writer.close()
    with engine.connect() as connection:
        # The engine's own connections keep NORMAL (1) and the usual busy timeout.
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_writer_same_id_twice_in_batch(engine: Engine) -> None:
    writer = DeliveryWriter(engine)

    async def store_twice() -> list[bool]:
        rows = [delivery_row("twice-1"), delivery_row("twice-1")]
        return list(await asyncio.gather(*(writer.store(row) for row in rows)))

    assert run_and_close(writer, store_twice) == [True, False]
    assert count_deliveries(engine) == 1


def test_writer_failing_row_fails_alone(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    writer = DeliveryWriter(engine)
    # `event` is NOT NULL, so this row fails on both SQLite and PostgreSQL.
    rows = [delivery_row("good-1"), delivery_row("bad-1", event=None), delivery_row("good-2")]

    async def store_all() -> list[Any]:
        return list(
            await asyncio.gather(*(writer.store(row) for row in rows), return_exceptions=True)
        )

    results = run_and_close(writer, store_all)

    assert results[0] is True
    assert isinstance(results[1], Exception)
    assert results[2] is True
    assert count_deliveries(engine) == 2
    failures = [record for record in caplog.records if record.getMessage().startswith("batch insert of 3")]
    assert failures
    assert all(record.delivery_ids == "good-1,bad-1,good-2" for record in failures)


def test_write_gate_foreground_before_background() -> None:
    gate = SQLiteWriteGate(timeout_s=30)
    order: list[str] = []
    assert gate.acquire()

    def take(name: str, background: bool) -> None:
        assert gate.acquire(background=background)
        order.append(name)
        gate.release()

    foreground = threading.Thread(target=take, args=("foreground", False))
    foreground.start()
    while not gate.has_waiters:
        threading.Event().wait(0.001)
    background = threading.Thread(target=take, args=("background", True))
    background.start()
    gate.release()
    foreground.join(10)
    background.join(10)

    assert order == ["foreground", "background"]
    assert not gate.has_waiters


def test_write_gate_timeout_returns_false() -> None:
    gate = SQLiteWriteGate(timeout_s=0.01)
    assert gate.acquire()

    assert gate.acquire() is False
    assert not gate.has_waiters


def test_write_gate_released_after_transactions(engine: Engine) -> None:
    gate = sqlite_write_gate(engine)
    if engine.dialect.name != "sqlite":
        assert gate is None
        return
    assert gate is not None

    with session_scope(engine) as session:
        deliveries.insert_delivery(session=session, **delivery_row("gate-1"))
    with pytest.raises(RuntimeError):
        with session_scope(engine) as session:
            deliveries.insert_delivery(session=session, **delivery_row("gate-2"))
            raise RuntimeError("roll back")
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")

    # Held after any of the above, the gate would make this wait for its 30 s timeout.
    assert gate.acquire(background=True)
    gate.release()


def test_batch_stops_when_asked_to_yield(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "YIELDING_BATCH_SECONDS", 0.0)
    with session_scope(engine) as session:
        for index in range(3):
            deliveries.insert_delivery(
                session=session, **delivery_row(f"yield-{index}-{uuid.uuid4().hex[:6]}")
            )

    result = process_batch(engine, settings, limit=10, should_yield=lambda: True)

    assert result.total == 1
    with Session(engine) as session:
        assert deliveries.count_by_status(session=session).get("pending") == 2


@pytest.mark.parametrize(
    ("count", "sizes"),
    [(1, [1]), (3, [2, 1]), (12, [8, 4]), (130, [128, 2]), (300, [128, 128, 32, 8, 4])],
)
def test_chunks_of_powers_of_two(count: int, sizes: list[int]) -> None:
    chunks = list(deliveries.power_of_two_chunks(list(range(count))))

    assert [len(chunk) for chunk in chunks] == sizes
    assert [row for chunk in chunks for row in chunk] == list(range(count))


def test_insert_deliveries_across_chunks(engine: Engine) -> None:
    with session_scope(engine) as session:
        deliveries.insert_deliveries(session=session, rows=[delivery_row("chunk-5")])
    rows = [delivery_row(f"chunk-{index}") for index in range(300)] + [delivery_row("chunk-7")]

    with session_scope(engine) as session:
        results = deliveries.insert_deliveries(session=session, rows=rows)

    assert results == [index != 5 for index in range(300)] + [False]
    assert count_deliveries(engine) == 300


def test_worker_runs_while_request_waits_for_commit(engine: Engine, settings: Settings) -> None:
    worker = worker_module.Worker(engine, settings)
    worker.request_started()

    with worker.request_paused():
        assert not worker.has_requests()
    assert worker.has_requests()
    worker.request_finished()
    assert not worker.has_requests()


def pending_count(engine: Engine) -> int:
    with Session(engine) as session:
        return deliveries.count_by_status(session=session).get("pending", 0)


def start_burst(worker: worker_module.Worker) -> None:
    for _ in range(worker_module.BURST_REQUESTS):
        worker.request_started()


def test_paused_request_counts_toward_burst(engine: Engine, settings: Settings) -> None:
    worker = worker_module.Worker(engine, settings)
    start_burst(worker)

    with worker.request_paused():
        assert worker.requests_in_flight == worker_module.BURST_REQUESTS
        assert worker.in_burst()
    worker.request_finished()
    assert worker.requests_in_flight == worker_module.BURST_REQUESTS - 1


def start_worker_in_burst(engine: Engine, settings: Settings, defer_seconds: float) -> worker_module.Worker:
    """Start a worker during a burst of requests, with one pending delivery."""
    worker = worker_module.Worker(engine, settings.model_copy(update={"worker_burst_defer_seconds": defer_seconds}))
    start_burst(worker)
    with session_scope(engine) as session:
        deliveries.insert_delivery(session=session, **delivery_row("in-burst"))
    worker.start()
    worker.notify()
    return worker


def test_worker_waits_out_burst(engine: Engine, settings: Settings) -> None:
    worker = start_worker_in_burst(engine, settings, defer_seconds=600.0)
    try:
        assert not worker.wait_idle(0.5)
        assert pending_count(engine) == 1

        # One request fewer than a burst: the worker processes while the rest are in flight.
        worker.request_finished()
        assert worker.wait_idle(10)
    finally:
        worker.stop()
    assert pending_count(engine) == 0


def test_worker_stops_waiting_after_budget(engine: Engine, settings: Settings) -> None:
    worker = start_worker_in_burst(engine, settings, defer_seconds=0.2)
    try:
        assert worker.wait_idle(10)
        assert worker.in_burst()
    finally:
        worker.stop()
    assert pending_count(engine) == 0


def test_postgresql_store_pauses_worker(engine: Engine) -> None:
    # The asyncio insert waits for PostgreSQL's commit without the CPU, so the webhook
    # endpoint lets the worker run meanwhile; SQLite's insert runs on the event loop.
    writer = DeliveryWriter(engine)

    assert writer.commits_off_loop is (engine.dialect.name == "postgresql")
    writer.close()


def test_worker_outlives_failing_isolation(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures: list[int] = []

    def fail(*_args: Any, **_kwargs: Any) -> Any:
        failures.append(1)
        raise ProgrammingError("SELECT", {}, Exception('relation "delivery" does not exist'))

    real_process_batch = worker_module.process_batch
    monkeypatch.setattr(worker_module, "process_batch", fail)
    monkeypatch.setattr(worker_module, "isolate_oldest_delivery", fail)
    worker = worker_module.Worker(engine, settings)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(failures) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(failures) >= 4
        assert worker.is_running

        # Once the database works again, the same thread processes new deliveries.
        monkeypatch.setattr(worker_module, "process_batch", real_process_batch)
        with session_scope(engine) as session:
            deliveries.insert_delivery(session=session, **delivery_row("after-outage"))
        worker.notify()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with Session(engine) as session:
                if deliveries.count_by_status(session=session).get("pending", 0) == 0:
                    break
            time.sleep(0.05)
        with Session(engine) as session:
            assert deliveries.count_by_status(session=session).get("pending", 0) == 0
    finally:
        worker.stop()


def test_read_session_changes_stay_in_memory(database_url: str, engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("only SQLite has a database-wide write lock")
    with session_scope(engine) as session:
        deliveries.insert_delivery(session=session, **delivery_row("read-view-1"))
    other = sqlite3.connect(engine.url.database or "", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        # A read function may change a loaded object for its view; the next query must not
        # write it while another connection holds the write lock.
        with read_session(engine) as session:
            delivery = deliveries.get_delivery(session=session, delivery_id="read-view-1")
            assert delivery is not None
            delivery.action = "changed for the view"
            assert deliveries.count_by_status(session=session) == {"pending": 1}
    finally:
        other.execute("ROLLBACK")
        other.close()

    with Session(engine) as session:
        stored = deliveries.get_delivery(session=session, delivery_id="read-view-1")
        assert stored is not None
        assert stored.action == "queued"
