"""`WebhookMiddleware` handles `POST /github/webhooks` itself and leaves every other request,
including other methods on the same path, to FastAPI as before."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot import webhooks
from bot.app import create_app
from bot.config import Settings
from storage.models import Delivery
from tests.conftest import BotClient
from tests.github.conftest import count_rows, delivery_statuses, load_fixture


def test_accepted_response_headers(bot: BotClient) -> None:
    payload = load_fixture("workflow_job.completed.json")

    response = bot.send("workflow_job", payload, delivery_id="h-1")

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "delivery_id": "h-1"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))


def test_get_rejected_by_fastapi(bot: BotClient) -> None:
    response = bot.client.get("/github/webhooks")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {"detail": "Method Not Allowed"}


def test_other_routes_pass_through(bot: BotClient) -> None:
    assert bot.client.get("/healthz").json() == {"status": "ok"}
    missing = bot.client.post("/github/webhooks/extra", content=b"{}")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}


def test_trailing_slash_redirected(bot: BotClient) -> None:
    response = bot.client.post("/github/webhooks/", content=b"{}", follow_redirects=False)

    assert response.status_code == 307
    assert response.headers["location"].endswith("/github/webhooks")


def test_route_in_openapi_schema(bot: BotClient) -> None:
    schema = bot.client.get("/openapi.json").json()

    operation = schema["paths"]["/github/webhooks"]["post"]
    assert operation["operationId"] == "receive_webhook_github_webhooks_post"
    assert operation["description"] == "Accept one GitHub webhook delivery."


@pytest.fixture
def bot_without_middleware(settings: Settings) -> Iterator[BotClient]:
    """The app with WebhookMiddleware removed, so FastAPI's route gets the deliveries."""
    app = create_app(settings)
    app.user_middleware = [
        middleware
        for middleware in app.user_middleware
        if middleware.cls is not webhooks.WebhookMiddleware
    ]
    with TestClient(app) as client:
        yield BotClient(client)


def test_route_answers_without_middleware(bot_without_middleware: BotClient) -> None:
    bot = bot_without_middleware
    payload = load_fixture("workflow_job.completed.json")

    accepted = bot.send("workflow_job", payload, delivery_id="route-1")
    duplicate = bot.send("workflow_job", payload, delivery_id="route-1")
    forged = bot.send("workflow_job", payload, delivery_id="route-2", secret="not-the-secret")

    assert (accepted.status_code, accepted.json()) == (
        202,
        {"status": "accepted", "delivery_id": "route-1"},
    )
    assert (duplicate.status_code, duplicate.json()) == (
        200,
        {"status": "duplicate", "delivery_id": "route-1"},
    )
    assert forged.status_code == 401
    with bot.session() as session:
        assert delivery_statuses(session) == {"route-1": "done"}


def test_disconnect_before_body_ends(bot: BotClient, caplog: pytest.LogCaptureFixture) -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/github/webhooks",
        "root_path": "",
        "headers": [(b"x-github-event", b"workflow_job"), (b"x-github-delivery", b"gone-1")],
        "app": bot.app,
    }
    messages = iter([{"type": "http.request", "body": b'{"action": ', "more_body": True}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    assert bot.client.portal is not None
    bot.client.portal.call(webhooks.serve_webhook, scope, receive, send)

    assert sent == []
    assert not bot.app.state.worker.has_requests()
    assert [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and getattr(record, "delivery_id", None) == "gone-1"
    ] == ["webhook client disconnected before sending the whole body"]
    with bot.session() as session:
        assert count_rows(session, Delivery) == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        # json.loads accepts NaN, which orjson rejects.
        (b'{"action": "completed", "score": NaN}', 202),
        # orjson accepts 1,010 levels, which json.loads (used by the worker) rejects.
        (b'{"action": "completed", "zen": ' + b"[" * 1010 + b"]" * 1010 + b"}", 400),
    ],
)
def test_json_verdicts_match_stdlib(bot: BotClient, body: bytes, status: int) -> None:
    response = bot.send("star", body, delivery_id="verdict-1")

    assert response.status_code == status
    with bot.session() as session:
        assert count_rows(session, Delivery) == 1
