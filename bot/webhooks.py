"""`POST /github/webhooks`: verify, store, acknowledge. Processing happens in the worker.

`bot.app.BotApp` calls `serve_webhook` as a plain ASGI app in front of FastAPI's middleware and
routing, and the FastAPI route documents the endpoint in the OpenAPI schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from bot.ingest import DeliveryWriter
from bot.observability import record_delivery_received
from bot.webhook_problems import commit_timed_out, not_stored, warn_if_body_differs
from handlers.github import handler_for
from handlers.github.payload import MAX_ID, as_int
from storage.models import DeliveryStatus

logger = logging.getLogger(__name__)

router = APIRouter()

WEBHOOK_PATH = "/github/webhooks"

# The length of the `delivery.delivery_id` column.
MAX_DELIVERY_ID_LENGTH = 100
# GitHub caps webhook payloads at 25 MB and does not send larger ones.
MAX_BODY_BYTES = 25 * 1024 * 1024
# Headers kept with a stored delivery; the signature is not kept.
KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-id",
    "x-github-hook-installation-target-type",
)
KEPT_HEADER_KEYS = tuple((name, name.encode()) for name in KEPT_HEADERS)
# Bodies with this many opening brackets or more are parsed by `json.loads` (see parse_json).
MAX_ORJSON_BRACKETS = 900
# How long a request waits for the commit of its delivery before it responds with 503. GitHub
# records a delivery as failed when the response takes longer than 10 s (docs.github.com,
# "Handling failed webhook deliveries"). A 503 before then fails it too, but with a reason
# shown in the App's list of recent deliveries, and lets the request end. The 2 s left cover
# reading the body and the network. The redelivery sweep (bot/redelivery.py, when the App is
# configured) requests a redelivery of each failed delivery that the bot has not stored.
COMMIT_TIMEOUT_SECONDS = 8.0


def compute_signature(secret: str, body: bytes) -> str:
    """Return the `X-Hub-Signature-256` value GitHub sends for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_valid_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """Compare the signature over the raw body bytes in constant time."""
    if not signature:
        return False
    # compare_digest raises TypeError on str with non-ASCII characters, which a forged header
    # can carry, so both sides are compared as bytes.
    expected = compute_signature(secret, body).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", errors="replace"))


def text_column(value: object, max_length: int) -> str | None:
    """Return a payload string fit for a text column, or None if it is not a string.

    NUL characters are dropped because PostgreSQL rejects them in text, which would turn a
    verified delivery into a 500.
    """
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "")[:max_length]


async def read_body(receive: Receive, declared_length: bytes | None) -> bytes | None:
    """Read the raw body, or return None as soon as it passes MAX_BODY_BYTES.

    Raises `ClientDisconnect` if the client closes the connection before the body ends.
    """
    if declared_length and declared_length.isdigit() and int(declared_length) > MAX_BODY_BYTES:
        return None
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """Parse JSON bytes with orjson, and with the standard library where the two could differ.

    orjson parses a delivery about 2.5 times as fast. It rejects a few inputs that `json.loads`
    accepts (NaN, lone surrogates, a UTF-8 BOM, UTF-16 text) and words its errors differently,
    so the standard library decides on those and writes the error messages. orjson also
    accepts nesting up to 1,024 levels, while `json.loads`, which the worker uses, raises
    RecursionError near the interpreter's recursion limit (1,000 by default). So a body with
    that many brackets goes to `json.loads` too.
    """
    if body.count(b"[") + body.count(b"{") >= MAX_ORJSON_BRACKETS:
        return json.loads(body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def decode_payload(body: bytes, content_type: str) -> tuple[bytes, dict[str, Any] | None, str | None]:
    """Return the JSON bytes, the parsed object and an error message.

    Webhooks set to `application/x-www-form-urlencoded` carry the JSON in a `payload` field.
    """
    if content_type.startswith("application/x-www-form-urlencoded"):
        fields = parse_qs(body.decode("utf-8", errors="replace"))
        if "payload" not in fields:
            return body, None, "the form body has no `payload` field"
        body = fields["payload"][0].encode()
    try:
        payload = parse_json(body)
    except ValueError as exc:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors, and so is the error for an
        # integer longer than Python's limit on digits (4,300 by default).
        return body, None, f"the body is not valid JSON: {exc}"
    except RecursionError:
        return body, None, "the body is not valid JSON: it is nested too deeply to parse"
    if not isinstance(payload, dict):
        return body, None, f"the body must be a JSON object, got {type(payload).__name__}"
    return body, payload, None


def is_webhook_request(scope: Scope) -> bool:
    """Tell whether an ASGI request is a `POST /github/webhooks`."""
    is_post = scope["type"] == "http" and scope["method"] == "POST"
    return is_post and route_path(scope) == WEBHOOK_PATH


def route_path(scope: Scope) -> str:
    """Return the request path without the app's root path, as Starlette's router matches it."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    prefix_length = len(root_path)
    if root_path and path.startswith(root_path) and path[prefix_length : prefix_length + 1] == "/":
        return path[prefix_length:]
    return path


@router.post(WEBHOOK_PATH)
async def receive_webhook(request: Request) -> JSONResponse:
    """Accept one GitHub webhook delivery."""
    # `bot.app.BotApp` handles this path before FastAPI's middleware and routing, so this runs
    # only when the FastAPI app is called directly. The route documents the endpoint in the
    # OpenAPI schema.
    return WebhookReply()


class WebhookReply(JSONResponse):
    """A response that runs `serve_webhook` when sent, for the route above."""

    def __init__(self) -> None:
        super().__init__(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_webhook(scope, receive, send)


async def serve_webhook(scope: Scope, receive: Receive, send: Send) -> None:
    """Verify, store and acknowledge one delivery, as an ASGI app of the bot's FastAPI app."""
    state = scope["app"].state
    # The delivery worker pauses its batches while requests are in flight.
    worker = state.worker
    worker.request_started()
    try:
        status, content = await handle_webhook(state, scope, receive)
    except ClientDisconnect:
        logger.warning(
            "webhook client disconnected before sending the whole body",
            extra=delivery_fields(scope),
        )
        return
    except Exception as exc:
        # The delivery was not stored, so GitHub must see a failure and the delivery can be
        # sent again.
        status, content = not_stored(delivery_fields(scope), exc)
    finally:
        worker.request_finished()
    await send_json(send, status, content)


def delivery_fields(scope: Scope) -> dict[str, str]:
    """Return the delivery id and event of a request from its headers, for a log line."""
    return {
        "delivery_id": header_value(scope, b"x-github-delivery"),
        "event": header_value(scope, b"x-github-event"),
    }


def header_value(scope: Scope, name: bytes) -> str:
    """Return the first value of a request header, decoded as Starlette does, or ""."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


async def send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    """Send a JSON response, compact and with the headers of Starlette's JSONResponse.

    A 413 closes the connection: the client may still be sending the rest of the body, which
    the server would otherwise read as the next request.
    """
    body = orjson.dumps(content)
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    if status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def handle_webhook(state: Any, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
    """Verify and store one delivery; return the response status and JSON body."""
    # ASGI servers send header names in lower case; the first of repeated headers counts.
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)
    body = await read_body(receive, headers.get(b"content-length"))
    if body is None:
        logger.warning(
            "webhook body too large",
            extra={"delivery_id": headers.get(b"x-github-delivery", b"").decode("latin-1") or None},
        )
        return error(413, f"the body is larger than GitHub's {MAX_BODY_BYTES}-byte webhook limit")

    signature = headers.get(b"x-hub-signature-256", b"").decode("latin-1")
    if not is_valid_signature(state.webhook_secret, body, signature):
        delivery_header = headers.get(b"x-github-delivery")
        logged_id = None if delivery_header is None else delivery_header.decode("latin-1")
        logger.warning(
            "webhook signature %s",
            "missing" if not signature else "invalid",
            extra={"delivery_id": logged_id},
        )
        return error(
            401,
            "X-Hub-Signature-256 is missing or does not match the body; check that the App's "
            "webhook secret equals the bot's: GITHUB_WEBHOOK_SECRET when it is set, else the "
            "generated one that `release-bot webhook-secret show` prints",
        )

    event = headers.get(b"x-github-event", b"").decode("latin-1")
    delivery_id = headers.get(b"x-github-delivery", b"").decode("latin-1")
    missing = [name for name, value in (("X-GitHub-Event", event), ("X-GitHub-Delivery", delivery_id)) if not value]
    if missing:
        logger.warning("webhook header missing: %s", ", ".join(missing), extra={"delivery_id": delivery_id or None})
        headers_named = " and ".join(missing) + (" headers are" if len(missing) > 1 else " header is")
        return error(400, f"the {headers_named} required; GitHub sends both headers with every delivery")
    if len(delivery_id) > MAX_DELIVERY_ID_LENGTH:
        # Cut to the column's length, two long ids could collide and the second be dropped.
        logger.warning("webhook delivery id too long", extra={"delivery_id": delivery_id[:MAX_DELIVERY_ID_LENGTH]})
        return error(
            400,
            f"X-GitHub-Delivery is {len(delivery_id)} characters long, above the limit of "
            f"{MAX_DELIVERY_ID_LENGTH}; GitHub sends a 36-character GUID",
        )
    if event == "ping":
        return 200, {"status": "pong"}

    content_type = headers.get(b"content-type", b"").decode("latin-1")
    json_body, payload, problem = decode_payload(body, content_type)
    status = DeliveryStatus.PENDING
    if problem is not None:
        status = DeliveryStatus.INVALID
        logger.warning("invalid payload: %s", problem, extra={"delivery_id": delivery_id, "event": event})
    elif handler_for(event) is None:
        status = DeliveryStatus.IGNORED
        json_body = b""

    payload = payload or {}
    installation = payload.get("installation")
    repository = payload.get("repository")
    installation_id = installation.get("id") if isinstance(installation, dict) else None
    repository_name = repository.get("full_name") if isinstance(repository, dict) else None
    action = payload.get("action")
    row = dict(
        delivery_id=delivery_id,
        event=event[:100],
        action=text_column(action, 100),
        installation_id=as_int(installation_id, MAX_ID),
        repository=text_column(repository_name.lower(), 200) if isinstance(repository_name, str) else None,
        headers={
            name: headers[key].decode("latin-1")
            for name, key in KEPT_HEADER_KEYS
            if key in headers
        },
        body=json_body,
        status=status,
        error=problem,
    )
    # The writer returns once the transaction holding this delivery has committed.
    writer = delivery_writer(state)
    pause = state.worker.request_paused() if writer.commits_off_loop else contextlib.nullcontext()
    deadline = asyncio.timeout(COMMIT_TIMEOUT_SECONDS)
    try:
        with pause:
            async with deadline:
                stored = await writer.store(row)
    except TimeoutError:
        if not deadline.expired():
            raise
        return commit_timed_out(delivery_id, event, COMMIT_TIMEOUT_SECONDS)
    if not stored:
        await warn_if_body_differs(state.engine, row)
        return 200, {"status": "duplicate", "delivery_id": delivery_id}
    record_delivery_received(event)
    if status is DeliveryStatus.INVALID:
        return error(400, problem or "invalid payload", delivery_id=delivery_id)
    if status is DeliveryStatus.IGNORED:
        return 202, {"status": "ignored", "event": event}
    state.worker.notify()
    return 202, {"status": "accepted", "delivery_id": delivery_id}


def error(status: int, message: str, **fields: Any) -> tuple[int, dict[str, Any]]:
    return status, {"error": message, **fields}


def delivery_writer(state: Any) -> DeliveryWriter:
    """Return the app's group-commit writer, created on first use for the app's engine."""
    writer = getattr(state, "delivery_writer", None)
    if writer is None or writer.engine is not state.engine:
        writer = state.delivery_writer = DeliveryWriter(state.engine)
    return writer
