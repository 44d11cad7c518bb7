"""`/healthz` and `/readyz`, as a load balancer reads them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bot.app import create_app
from bot.config import Settings
from tests.conftest import BotClient


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


def test_not_ready_without_schema(bot: BotClient) -> None:
    bot.client.app.state.worker.stop()  # type: ignore[attr-defined]
    with bot.client.app.state.engine.begin() as connection:  # type: ignore[attr-defined]
        connection.exec_driver_sql("DROP TABLE delivery")

    response = bot.client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["database"] is False
