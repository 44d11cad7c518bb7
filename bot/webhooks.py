"""`POST /github/webhooks`: verify, store, acknowledge. Processing happens in the worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bot.ingest import DeliveryWriter
from bot.observability import record_delivery_received
from handlers.github import handler_for
from handlers.github.payload import MAX_ID, as_int
from storage.models import DeliveryStatus

logger = logging.getLogger(__name__)

router = APIRouter()

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


def error(status: int, message: str, **fields: Any) -> JSONResponse:
    return JSONResponse({"error": message, **fields}, status_code=status)


async def read_body(request: Request) -> bytes | None:
    """Read the raw body, or return None as soon as it passes MAX_BODY_BYTES."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


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
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return body, None, f"the body is not valid JSON: {exc}"
    except RecursionError:
        return body, None, "the body is not valid JSON: it is nested too deeply to parse"
    if not isinstance(payload, dict):
        return body, None, f"the body must be a JSON object, got {type(payload).__name__}"
    return body, payload, None


@router.post("/github/webhooks")
async def receive_webhook(request: Request) -> JSONResponse:
    """Accept one GitHub webhook delivery."""
    # The delivery worker pauses its batches while requests are in flight.
    worker = request.app.state.worker
    worker.request_started()
    try:
        return await handle_webhook(request)
    finally:
        worker.request_finished()


async def handle_webhook(request: Request) -> JSONResponse:
    """Verify, store and acknowledge one delivery."""
    state = request.app.state
    body = await read_body(request)
    if body is None:
        return error(413, f"the body is larger than GitHub's {MAX_BODY_BYTES}-byte webhook limit")

    signature = request.headers.get("x-hub-signature-256")
    if not is_valid_signature(state.webhook_secret, body, signature):
        logger.warning(
            "webhook signature %s",
            "missing" if not signature else "invalid",
            extra={"delivery_id": request.headers.get("x-github-delivery")},
        )
        return error(
            401,
            "X-Hub-Signature-256 is missing or does not match the body; check that the App's "
            "webhook secret equals the bot's GITHUB_WEBHOOK_SECRET",
        )

    event = request.headers.get("x-github-event", "")
    delivery_id = request.headers.get("x-github-delivery", "")
    if not event or not delivery_id:
        return error(400, "X-GitHub-Event and X-GitHub-Delivery headers are required")
    if event == "ping":
        return JSONResponse({"status": "pong"}, status_code=200)

    json_body, payload, problem = decode_payload(body, request.headers.get("content-type", ""))
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
    # The writer returns once the transaction holding this delivery has committed.
    stored = await delivery_writer(state).store(
        dict(
            delivery_id=delivery_id[:100],
            event=event[:100],
            action=text_column(action, 100),
            installation_id=as_int(installation_id, MAX_ID),
            repository=text_column(repository_name.lower(), 200) if isinstance(repository_name, str) else None,
            headers={name: request.headers[name] for name in KEPT_HEADERS if name in request.headers},
            body=json_body,
            status=status,
            error=problem,
        )
    )
    if not stored:
        return JSONResponse({"status": "duplicate", "delivery_id": delivery_id}, status_code=200)
    record_delivery_received(event)
    if status is DeliveryStatus.INVALID:
        return error(400, problem or "invalid payload", delivery_id=delivery_id)
    if status is DeliveryStatus.IGNORED:
        return JSONResponse({"status": "ignored", "event": event}, status_code=202)
    state.worker.notify()
    return JSONResponse({"status": "accepted", "delivery_id": delivery_id}, status_code=202)


def delivery_writer(state: Any) -> DeliveryWriter:
    """Return the app's group-commit writer, created on first use for the app's engine."""
    writer = getattr(state, "delivery_writer", None)
    if writer is None or writer.engine is not state.engine:
        writer = state.delivery_writer = DeliveryWriter(state.engine)
    return writer
