"""`BotApp` handles `POST /github/webhooks` itself and leaves every other request, including
other methods on the same path, to FastAPI as before."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from bot import webhooks
from bot.app import BotApp, create_app
from bot.config import Settings
from bot.logs import TextFormatter
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


class FastAPIOnly(BotApp):
    """The bot's app called as a plain FastAPI app, so FastAPI's route gets the deliveries."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(self, scope, receive, send)


@pytest.fixture
def bot_through_route(settings: Settings) -> Iterator[BotClient]:
    app = create_app(settings)
    app.__class__ = FastAPIOnly
    with TestClient(app) as client:
        yield BotClient(client)


def test_route_serves_without_fast_path(bot_through_route: BotClient) -> None:
    bot = bot_through_route
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


def test_json_accepted_by_stdlib_only(bot: BotClient) -> None:
    # json.loads accepts NaN, which orjson rejects.
    response = bot.send("star", b'{"action": "created", "score": NaN}', delivery_id="nan-1")

    assert response.status_code == 202
    with bot.session() as session:
        assert delivery_statuses(session) == {"nan-1": "ignored"}


def test_deep_nesting_refused_as_the_worker_would(bot: BotClient) -> None:
    # orjson parses 1,010 levels, but json.loads, which the worker uses because it keeps
    # integers beyond 64 bits exact, stops near the recursion limit of 1,000.
    payload = json.dumps(load_fixture("workflow_job.completed.json")).encode()
    body = payload[:-1] + b', "zen": ' + b"[" * 1010 + b"]" * 1010 + b"}"

    response = bot.send("workflow_job", body, delivery_id="deep-1")

    assert response.status_code == 400
    with bot.session() as session:
        assert delivery_statuses(session) == {"deep-1": "invalid"}


def test_store_failure_returns_500(
    bot: BotClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(_row: dict[str, Any]) -> bool:
        # Not a database outage: the writer raises this once it was closed.
        raise RuntimeError("the delivery writer was stopped")

    monkeypatch.setattr(webhooks.delivery_writer(bot.app.state), "store", fail)

    response = bot.send("workflow_job", load_fixture("workflow_job.completed.json"), delivery_id="down-1", wait=False)

    assert response.status_code == 500
    assert response.json() == {"error": "the delivery could not be stored; send it again later"}
    records = [record for record in caplog.records if getattr(record, "delivery_id", None) == "down-1"]
    assert [(record.levelno, record.getMessage()) for record in records] == [
        (logging.ERROR, "webhook delivery not stored")
    ]
    assert not bot.app.state.worker.has_requests()

    # In the text log format the ids come on the first line, before the traceback.
    formatted = TextFormatter("%(levelname)s %(name)s: %(message)s").format(records[0])
    first_line, traceback = formatted.split("\n", 1)
    assert first_line == "ERROR bot.webhook_problems: webhook delivery not stored delivery_id=down-1 event=workflow_job"
    assert traceback.startswith("Traceback")
    assert "delivery_id" not in traceback


def test_database_error_outside_outage_returns_500(
    bot: BotClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(_row: dict[str, Any]) -> bool:
        # sqlite3 raises OperationalError for a faulty statement too; that is a bug, not an outage.
        raise sqlite3.OperationalError('near "INTO": syntax error')

    monkeypatch.setattr(webhooks.delivery_writer(bot.app.state), "store", fail)

    response = bot.send("workflow_job", load_fixture("workflow_job.completed.json"), delivery_id="bug-1", wait=False)

    assert response.status_code == 500
    records = [record for record in caplog.records if getattr(record, "delivery_id", None) == "bug-1"]
    assert [record.levelno for record in records] == [logging.ERROR]
    assert records[0].exc_info is not None
