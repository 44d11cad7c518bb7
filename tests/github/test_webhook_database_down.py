"""`POST /github/webhooks` when the database cannot store a delivery: a 503 that names the
problem, a WARNING with the delivery id, and a commit deadline below GitHub's 10 s timeout.

A delivery is acknowledged only once its insert committed. When the request gives up first,
a redelivery is either stored as new or, if the insert committed after all, a duplicate.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from bot import webhook_problems, webhooks
from storage.db import create_db_engine
from tests.conftest import BotClient
from tests.github.conftest import delivery_statuses, load_fixture

# Port 1 on the loopback address has no PostgreSQL server, so connections are refused.
UNREACHABLE_POSTGRES_URL = "postgresql+psycopg://bot:unused@127.0.0.1:1/bot"
# Long enough for the writer thread to take a delivery into its transaction on a loaded
# machine, and short enough that the test does not wait the real 8 s.
SHORT_COMMIT_TIMEOUT_SECONDS = 1.0


def webhook_records(caplog: pytest.LogCaptureFixture, delivery_id: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "bot.webhook_problems" and getattr(record, "delivery_id", None) == delivery_id
    ]


@contextmanager
def write_lock_held(database_url: str) -> Iterator[Callable[[], None]]:
    """Hold the lock that webhook inserts need from another connection; yield its release.

    On SQLite a second driver connection stands for another process: it holds the database's
    write lock with BEGIN IMMEDIATE, and the bot's write gate does not see it. On PostgreSQL
    another session locks the delivery table in a mode that blocks INSERT but not the
    worker's SELECT ... FOR UPDATE SKIP LOCKED.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        other = sqlite3.connect(url.database or "", isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield lambda: other.execute("COMMIT")
        finally:
            other.close()
        return

    engine = create_engine(url)
    connection = engine.connect()
    connection.exec_driver_sql("LOCK TABLE delivery IN SHARE ROW EXCLUSIVE MODE")
    try:
        yield connection.commit
    finally:
        connection.close()
        engine.dispose()


def wait_until(condition: Callable[[], bool], description: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{description} did not happen within {timeout_s} s"
        time.sleep(0.02)


def test_missing_table_returns_503(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    bot.app.state.worker.stop()
    with bot.app.state.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE delivery")

    response = bot.send("workflow_job", load_fixture("workflow_job.completed.json"), delivery_id="gone-table-1", wait=False)

    assert response.status_code == 503
    body = response.json()
    assert body["error"] == webhook_problems.NOT_STORED_MESSAGE
    assert body["delivery_id"] == "gone-table-1"
    assert body["reason"].startswith("database schema missing: ")
    assert "release-bot db upgrade" in body["reason"]
    records = webhook_records(caplog, "gone-table-1")
    assert [(record.levelno, record.getMessage()) for record in records] == [
        (logging.WARNING, "webhook delivery not stored: database schema missing")
    ]
    assert records[0].event == "workflow_job"
    assert records[0].exc_info is None


def test_unreachable_database_returns_503(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    state = bot.app.state
    assert bot.client.portal is not None
    bot.client.portal.call(webhooks.delivery_writer(state).aclose)
    state.engine = create_db_engine(UNREACHABLE_POSTGRES_URL, pool_size=1)
    try:
        response = bot.send("workflow_job", load_fixture("workflow_job.completed.json"), delivery_id="no-server-1", wait=False)
    finally:
        bot.client.portal.call(webhooks.delivery_writer(state).aclose)
        state.engine.dispose()

    assert response.status_code == 503
    assert response.json()["reason"].startswith("database unavailable: ")
    assert "check that DATABASE_URL" in response.json()["reason"]
    # The driver's message names the host, so it goes to the log, not to the response.
    assert "127.0.0.1" not in response.text
    records = webhook_records(caplog, "no-server-1")
    assert [record.getMessage() for record in records] == ["webhook delivery not stored: database unavailable"]
    assert "127.0.0.1" in records[0].error


def test_commit_deadline_returns_503(
    bot: BotClient, database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(webhooks, "COMMIT_TIMEOUT_SECONDS", SHORT_COMMIT_TIMEOUT_SECONDS)
    writer = webhooks.delivery_writer(bot.app.state)
    first_payload = load_fixture("workflow_job.completed.json")
    second_payload = load_fixture("workflow_job.completed.json")
    second_payload["workflow_job"]["id"] += 1

    with write_lock_held(database_url) as release:
        # The first insert waits in a transaction for the lock; the second stays queued.
        first = bot.send("workflow_job", first_payload, delivery_id="slow-1", wait=False)
        second = bot.send("workflow_job", second_payload, delivery_id="slow-2", wait=False)
        release()
        wait_until(lambda: not writer._queue, "the writer's queue to empty")

    for response, delivery_id in ((first, "slow-1"), (second, "slow-2")):
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == webhook_problems.NOT_STORED_MESSAGE
        assert body["delivery_id"] == delivery_id
        assert body["reason"].startswith(f"database busy: the delivery's insert did not commit within {SHORT_COMMIT_TIMEOUT_SECONDS:g} s")
        assert [record.getMessage() for record in webhook_records(caplog, delivery_id)] == [
            f"webhook delivery not stored within {SHORT_COMMIT_TIMEOUT_SECONDS:g} s: database busy"
        ]
    # The first insert committed once the lock was free; the queued second one was dropped.
    # No request waits for the late commit, so the worker finds it at its next poll.
    with bot.session() as session:
        assert set(delivery_statuses(session)) == {"slow-1"}

    # GitHub's redeliveries: the committed one is a duplicate, the dropped one is new.
    caplog.clear()
    first_again = bot.send("workflow_job", first_payload, delivery_id="slow-1")
    second_again = bot.send("workflow_job", second_payload, delivery_id="slow-2")

    assert (first_again.status_code, first_again.json()) == (200, {"status": "duplicate", "delivery_id": "slow-1"})
    assert second_again.status_code == 202
    assert [record.getMessage() for record in caplog.records if record.name.startswith("bot.webhook")] == []
    with bot.session() as session:
        assert delivery_statuses(session) == {"slow-1": "done", "slow-2": "done"}


def test_lock_released_before_deadline_accepted(bot: BotClient, database_url: str) -> None:
    payload = load_fixture("workflow_job.completed.json")

    with write_lock_held(database_url) as release:
        # Released while the request waits, well within the real COMMIT_TIMEOUT_SECONDS.
        timer = threading.Timer(0.3, release)
        timer.start()
        try:
            response = bot.send("workflow_job", payload, delivery_id="waited-1")
        finally:
            timer.join()

    assert (response.status_code, response.json()) == (202, {"status": "accepted", "delivery_id": "waited-1"})
    with bot.session() as session:
        assert delivery_statuses(session) == {"waited-1": "done"}


def test_deleted_sqlite_file_returns_503(bot: BotClient, database_url: str) -> None:
    if make_url(database_url).get_backend_name() != "sqlite":
        pytest.skip("only SQLite keeps the database in a file of the bot's")
    before = bot.send("workflow_job", load_fixture("workflow_job.completed.json"), delivery_id="before-delete-1")
    assert before.status_code == 202

    # The bot's open connections go on writing into the deleted file, so nothing may be acknowledged.
    os.remove(make_url(database_url).database or "")
    after = bot.send("workflow_job", load_fixture("workflow_job.completed.json"), delivery_id="after-delete-1", wait=False)
    ready = bot.client.get("/readyz")

    assert after.status_code == 503
    assert after.json()["reason"].startswith("database unavailable: its file was deleted or replaced while the bot ran; ")
    assert ready.status_code == 503
    assert ready.json()["reason"] == after.json()["reason"]
