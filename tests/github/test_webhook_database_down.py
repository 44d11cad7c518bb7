"""`POST /github/webhooks` when the database cannot store a delivery: a 503 that names the
problem, and a WARNING with the delivery id."""

from __future__ import annotations

import logging

import pytest

from bot import webhook_problems, webhooks
from storage.db import create_db_engine
from tests.conftest import BotClient
from tests.github.conftest import load_fixture

# Port 1 on the loopback address has no PostgreSQL server, so connections are refused.
UNREACHABLE_POSTGRES_URL = "postgresql+psycopg://bot:unused@127.0.0.1:1/bot"


def webhook_records(caplog: pytest.LogCaptureFixture, delivery_id: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "bot.webhook_problems" and getattr(record, "delivery_id", None) == delivery_id
    ]


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
