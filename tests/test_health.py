"""`/healthz` and `/readyz`, as a load balancer reads them."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.config import Settings
from storage.db import create_db_engine
from tests.conftest import BotClient
from tests.github.test_webhook_database_down import UNREACHABLE_POSTGRES_URL, write_lock_held


def test_ready_with_worker_running(bot: BotClient) -> None:
    response = bot.client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": True, "worker": "running"}


def test_not_ready_when_worker_stopped(bot: BotClient) -> None:
    bot.client.app.state.worker.stop()  # type: ignore[attr-defined]

    response = bot.client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "database": True, "worker": "stopped"}


def test_ready_with_worker_disabled(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"worker_enabled": False}))

    with TestClient(app) as client:
        response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": True, "worker": "disabled"}


def test_not_ready_without_schema(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    bot.client.app.state.worker.stop()  # type: ignore[attr-defined]
    with bot.client.app.state.engine.begin() as connection:  # type: ignore[attr-defined]
        connection.exec_driver_sql("DROP TABLE delivery")

    responses = [bot.client.get("/readyz") for _ in range(3)]

    assert [response.status_code for response in responses] == [503, 503, 503]
    assert responses[0].json()["database"] is False
    assert responses[0].json()["reason"].startswith("database schema missing: ")
    # One WARNING without a traceback, not one per probe.
    warnings = [record for record in caplog.records if record.name == "bot.readiness"]
    assert [record.levelno for record in warnings] == [logging.WARNING]
    assert warnings[0].exc_info is None


def test_not_ready_while_write_lock_held(
    bot: BotClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("only SQLite has a database-wide write lock")
    # The real bound is READY_TIMEOUT_SECONDS; the test need not wait that long.
    bot.app.state.database_probe.timeout_s = 0.2

    with caplog.at_level(logging.INFO, logger="bot.readiness"), write_lock_held(database_url) as release:
        locked = bot.client.get("/readyz")
        release()
        after = bot.client.get("/readyz")

    assert locked.status_code == 503
    assert locked.json()["status"] == "not ready"
    assert locked.json()["database"] is False
    assert locked.json()["reason"].startswith("database locked: another connection holds its write lock; ")
    assert (after.status_code, after.json()["status"]) == (200, "ready")
    assert [record.getMessage() for record in caplog.records if record.name == "bot.readiness"] == [
        f"database not ready: {locked.json()['reason']}",
        "database ready again",
    ]


def test_not_ready_when_database_unreachable(bot: BotClient) -> None:
    bot.app.state.database_probe.engine = create_db_engine(UNREACHABLE_POSTGRES_URL, pool_size=1)

    response = bot.client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["reason"].startswith("database unavailable: ")
