"""The JSON API when its database is gone: 503 with a JSON `detail` that names the problem and
the fix, one WARNING without a traceback, and programming errors still raised as before."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from storage import queries
from storage.db import create_db_engine
from tests.conftest import BotClient
from tests.github.conftest import load_fixture
from tests.github.test_webhook_database_down import UNREACHABLE_POSTGRES_URL, write_lock_held

API_REQUESTS = [
    ("GET", "/api/v1/runs"),
    ("GET", "/api/v1/runs/1"),
    ("GET", "/api/v1/stats"),
    ("POST", "/api/v1/metrics"),
]


def api_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "bot.app" and record.levelno == logging.WARNING]


def drop_all_tables(bot: BotClient) -> None:
    """Empty the database of every table, as a deleted and recreated SQLite file would be."""
    bot.app.state.worker.stop()
    bot.app.state.outbox_worker.stop()
    bot.app.state.scheduler.stop()
    engine = bot.app.state.engine
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            names = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars().all()
            for name in names:
                connection.exec_driver_sql(f'DROP TABLE "{name}"')
        else:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")


def test_missing_tables_return_503(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    drop_all_tables(bot)

    responses = [
        bot.client.request(method, path, json={"name": "bundle_size", "value": 1.0})
        for method, path in API_REQUESTS
    ]

    for response in responses:
        assert response.status_code == 503, response.request.url
        assert response.headers["content-type"] == "application/json"
        detail = response.json()["detail"]
        assert detail.startswith("database schema missing: it has no release-bot tables")
        assert "run `release-bot db upgrade`" in detail
    # A repeated problem is logged once a minute at most, without a traceback.
    warnings = api_warnings(caplog)
    assert [record.getMessage() for record in warnings] == ["request failed: database schema missing"]
    assert warnings[0].path == "/api/v1/runs"
    assert warnings[0].exc_info is None
    assert warnings[0].repeats_held_back == 0


def get_on_database(bot: BotClient, database_url: str, path: str) -> httpx.Response:
    """GET `path` with the app's engine replaced by one for `database_url`."""
    bot.app.state.engine = create_db_engine(database_url, pool_size=1)
    try:
        return bot.client.get(path)
    finally:
        bot.app.state.engine.dispose()


def test_unreachable_database_returns_503(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    response = get_on_database(bot, UNREACHABLE_POSTGRES_URL, "/api/v1/runs")

    assert response.status_code == 503
    assert response.json()["detail"].startswith("database unavailable: it cannot be reached or opened; ")
    assert "check that DATABASE_URL" in response.json()["detail"]
    assert [record.getMessage() for record in api_warnings(caplog)] == ["request failed: database unavailable"]


def test_unopenable_sqlite_file_returns_503(bot: BotClient, tmp_path: Path) -> None:
    # A directory where the database file should be: SQLite cannot open it.
    (tmp_path / "not-a-file.db").mkdir()
    response = get_on_database(bot, f"sqlite:///{tmp_path / 'not-a-file.db'}", "/api/v1/stats")

    assert response.status_code == 503
    assert response.json()["detail"].startswith("database unavailable: ")


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT", {}, sqlite3.OperationalError('near "FROM": syntax error')),
        ProgrammingError("SELECT", {}, Exception('column "nme" does not exist')),
    ],
    ids=["sqlite-syntax-error", "programming-error"],
)
def test_query_bug_not_turned_into_503(
    bot: BotClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    def fail(**_kwargs: object) -> None:
        raise error

    monkeypatch.setattr(queries, "list_runs", fail)

    # The test client raises what the app did not handle, where a server would respond with 500.
    with pytest.raises(type(error)):
        bot.client.get("/api/v1/runs")
    assert api_warnings(caplog) == []


def test_reads_while_write_lock_held(bot: BotClient, database_url: str) -> None:
    # Reads take no write lock, so another process's long write transaction does not hold them up.
    bot.send("workflow_run", load_fixture("workflow_run.completed.json"), delivery_id="locked-read-1")

    with write_lock_held(database_url):
        runs = bot.client.get("/api/v1/runs")
        stats = bot.client.get("/api/v1/stats", params={"metric": "build_time"})

    assert runs.status_code == 200
    assert len(runs.json()["runs"]) == 1
    assert stats.status_code == 200
    assert stats.json()["count"] == 1
