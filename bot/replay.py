"""Replay of stored webhook deliveries through the same inbox and worker as live ones.

A file contains one delivery or a JSON list of them, in either of two shapes:

- GitHub's record of a delivery, as `GET /app/hook/deliveries/{delivery_id}` returns it:
  `guid`, `event`, `action` and `request: {headers, payload}` at the top level;
- `{"headers": {...}, "payload": {...}}`, the headers and body of one webhook request.

In-process replay inserts each delivery into the inbox and drains it with the worker. Replay
over HTTP posts each one to a running bot, signed with the webhook secret as GitHub signs it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from bot.config import Settings
from bot.errors import BotError
from bot.webhooks import KEPT_HEADERS, compute_signature
from bot.worker import Worker
from handlers.github import handler_for
from storage import deliveries, state
from storage.db import create_db_engine, session_scope
from storage.models import DeliveryStatus

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/github/webhooks"
# Headers never copied from a file: the signatures belong to the original body and secret,
# and the HTTP client sets the framing headers for the bytes it sends.
DROPPED_HEADERS = frozenset(
    {"x-hub-signature", "x-hub-signature-256", "content-length", "host", "connection"}
)
# The column sizes of the delivery table (storage.models.Delivery).
MAX_ID_LENGTH = 100
MAX_REPOSITORY_LENGTH = 200


class UnreadableDelivery(BotError):
    """A replay file is missing, is not JSON, or does not contain deliveries."""


@dataclass(frozen=True)
class RecordedDelivery:
    """One delivery read from a file, with the exact bytes that are stored or sent."""

    source: str
    delivery_id: str
    event: str
    action: str | None
    headers: dict[str, str]
    payload: dict[str, Any]
    body: bytes

    @property
    def installation_id(self) -> int | None:
        installation = self.payload.get("installation")
        value = installation.get("id") if isinstance(installation, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def repository(self) -> str | None:
        repository = self.payload.get("repository")
        name = repository.get("full_name") if isinstance(repository, dict) else None
        return name.lower()[:MAX_REPOSITORY_LENGTH] if isinstance(name, str) else None


@dataclass(frozen=True)
class ReplayOutcome:
    """The result of one replayed delivery; `ok` is False for a rejected or failed one."""

    delivery: RecordedDelivery
    outcome: str
    detail: str | None = None
    ok: bool = True


def list_files(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Expand directories into their `*.json` files (recursively, sorted by path).

    Returns the files and a problem message for each path that is missing or contains none.
    """
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                (file for file in path.rglob("*.json") if file.is_file()),
                key=lambda file: file.relative_to(path).as_posix(),
            )
            if not found:
                problems.append(f"{path}: the directory contains no *.json files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    return files, problems


def read_file(path: Path) -> list[RecordedDelivery]:
    """Read the deliveries of one file; raise UnreadableDelivery naming the file and the fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableDelivery(f"{path}: cannot be read: {exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableDelivery(f"{path}: not valid JSON: {exc}") from exc

    if isinstance(document, list):
        if not document:
            raise UnreadableDelivery(f"{path}: the list is empty, so there is nothing to replay")
        return [parse_delivery(entry, f"{path}[{index}]") for index, entry in enumerate(document)]
    return [parse_delivery(document, str(path))]


def read_deliveries(paths: Iterable[Path]) -> tuple[list[RecordedDelivery], list[str]]:
    """Read every delivery under the paths; return them and one message per unreadable file."""
    files, problems = list_files(paths)
    recorded: list[RecordedDelivery] = []
    for file in files:
        try:
            recorded.extend(read_file(file))
        except UnreadableDelivery as exc:
            problems.append(str(exc))
    return recorded, problems


def parse_delivery(entry: object, source: str) -> RecordedDelivery:
    """Turn one JSON value into a delivery, or raise UnreadableDelivery saying what is missing."""
    if not isinstance(entry, dict):
        raise UnreadableDelivery(
            f"{source}: expected a delivery object, got {type(entry).__name__}"
        )
    request = entry.get("request")
    if isinstance(request, dict):
        raw_headers, payload = request.get("headers"), request.get("payload")
    elif "payload" in entry:
        raw_headers, payload = entry.get("headers"), entry.get("payload")
    else:
        raise UnreadableDelivery(
            f"{source}: neither GitHub's delivery record (with `request.payload`) nor an object "
            'with `headers` and `payload`; wrap a bare webhook body as {"headers": '
            '{"X-GitHub-Event": "EVENT"}, "payload": BODY}'
        )

    headers = read_headers(raw_headers, source)
    payload = read_payload(payload, source)
    event = headers.get("x-github-event") or entry.get("event")
    if not isinstance(event, str) or not event:
        raise UnreadableDelivery(
            f"{source}: the event name is missing; add an `X-GitHub-Event` header"
        )

    body = serialise(payload)
    delivery_id = headers.get("x-github-delivery") or entry.get("guid")
    if not isinstance(delivery_id, str) or not delivery_id:
        delivery_id = derived_delivery_id(event, body)
    action = payload.get("action")
    return RecordedDelivery(
        source=source,
        delivery_id=delivery_id[:MAX_ID_LENGTH],
        event=event[:MAX_ID_LENGTH],
        action=action[:MAX_ID_LENGTH] if isinstance(action, str) else None,
        headers=headers,
        payload=payload,
        body=body,
    )


def read_headers(raw: object, source: str) -> dict[str, str]:
    """Return the headers with lower-case names; a missing or null mapping is empty."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UnreadableDelivery(
            f"{source}: `headers` must be an object of header names and values, "
            f"got {type(raw).__name__}"
        )
    return {str(name).lower(): str(value) for name, value in raw.items() if value is not None}


def read_payload(raw: object, source: str) -> dict[str, Any]:
    """Return the payload object; a string holding JSON (a form-encoded delivery) is parsed."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UnreadableDelivery(
                f"{source}: `payload` is a string but not JSON: {exc}"
            ) from exc
    if not isinstance(raw, dict):
        raise UnreadableDelivery(
            f"{source}: `payload` must be a JSON object, got {type(raw).__name__}"
        )
    return raw


def serialise(payload: dict[str, Any]) -> bytes:
    """Serialise a payload once; these exact bytes are stored, signed and sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def derived_delivery_id(event: str, body: bytes) -> str:
    """Return a delivery id from the content, so replaying the same file twice is idempotent."""
    digest = hashlib.sha256(event.encode("utf-8") + b"\n" + body).hexdigest()
    return f"replay-{digest[:32]}"


def replay_in_process(
    engine: Engine, settings: Settings, recorded: Sequence[RecordedDelivery], *, force: bool
) -> list[ReplayOutcome]:
    """Insert the deliveries into the inbox, process them with the worker and report each.

    A delivery id already in the inbox is skipped, unless `force` puts the stored copy back
    in the pending state so that the worker processes it again. Messages the handlers queue
    in the outbox are not sent from here; the bot's outbox worker sends them when it runs.
    """
    stored_as: dict[str, str] = {}
    with session_scope(engine) as session:
        for delivery in recorded:
            if delivery.delivery_id not in stored_as:
                stored_as[delivery.delivery_id] = store_delivery(session, delivery, force=force)

    Worker(engine, settings).drain()

    outcomes = []
    reported: set[str] = set()
    with session_scope(engine) as session:
        for delivery in recorded:
            if delivery.delivery_id in reported:
                outcomes.append(
                    ReplayOutcome(delivery, "duplicate", "same delivery id as an earlier entry")
                )
                continue
            reported.add(delivery.delivery_id)
            outcomes.append(describe_stored(session, delivery, stored_as[delivery.delivery_id]))
    return outcomes


def store_delivery(session: Session, delivery: RecordedDelivery, *, force: bool) -> str:
    """Insert one delivery by the webhook endpoint's rules; return new, reset, duplicate or ping."""
    if delivery.event == "ping":
        return "ping"
    handled = handler_for(delivery.event) is not None
    inserted = deliveries.insert_delivery(
        session=session,
        delivery_id=delivery.delivery_id,
        event=delivery.event,
        action=delivery.action,
        installation_id=delivery.installation_id,
        repository=delivery.repository,
        headers={name: delivery.headers[name] for name in KEPT_HEADERS if name in delivery.headers},
        # Like the endpoint, keep no body for events that no handler reads.
        body=delivery.body if handled else b"",
        status=DeliveryStatus.PENDING if handled else DeliveryStatus.IGNORED,
    )
    if inserted:
        return "new"
    if force and handled:
        deliveries.reset_for_replay(session=session, delivery_id=delivery.delivery_id)
        return "reset"
    return "duplicate"


def describe_stored(session: Session, delivery: RecordedDelivery, stored_as: str) -> ReplayOutcome:
    """Describe a delivery after the worker ran, from its row in the inbox."""
    if stored_as == "ping":
        return ReplayOutcome(delivery, "ping", "not stored, like a live ping")
    row = deliveries.get_delivery(session=session, delivery_id=delivery.delivery_id)
    if row is None:
        return ReplayOutcome(delivery, "missing", "the inbox has no row for it", ok=False)
    if row.status == DeliveryStatus.IGNORED.value:
        return ReplayOutcome(delivery, "ignored", "no handler reads this event")
    if stored_as == "duplicate":
        return ReplayOutcome(
            delivery, "duplicate", f"already stored as {row.status}; --force processes it again"
        )
    failed = row.status in (DeliveryStatus.INVALID.value, DeliveryStatus.FAILED.value)
    return ReplayOutcome(delivery, row.status, row.error, ok=not failed)


def webhook_url(url: str) -> str:
    """Return the webhook endpoint of a bot given its base URL or the endpoint itself."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"invalid --url {url!r}: use the bot's address, such as http://127.0.0.1:8000"
        )
    if parts.path in ("", "/"):
        parts = parts._replace(path=WEBHOOK_PATH)
    return urlunsplit(parts)


def request_headers(delivery: RecordedDelivery, secret: str) -> dict[str, str]:
    """Return the headers to send: the recorded ones, the ids, and a signature of the body."""
    headers = {
        name: value for name, value in delivery.headers.items() if name not in DROPPED_HEADERS
    }
    headers["content-type"] = "application/json"
    headers.setdefault("user-agent", "release-bot-replay")
    headers["x-github-event"] = delivery.event
    headers["x-github-delivery"] = delivery.delivery_id
    headers["x-hub-signature-256"] = compute_signature(secret, delivery.body)
    return headers


def replay_over_http(
    client: httpx.Client, url: str, secret: str, recorded: Sequence[RecordedDelivery]
) -> tuple[list[ReplayOutcome], str | None]:
    """POST each delivery to a running bot; return the outcomes and a connection error, if any.

    The first connection error stops the replay, since the later deliveries would meet it too.
    """
    outcomes: list[ReplayOutcome] = []
    for delivery in recorded:
        try:
            response = client.post(
                url, content=delivery.body, headers=request_headers(delivery, secret)
            )
        except httpx.HTTPError as exc:
            return outcomes, f"cannot reach {url}: {exc}; check that `release-bot serve` runs there"
        outcomes.append(outcome_of_response(delivery, response))
    return outcomes, None


def outcome_of_response(delivery: RecordedDelivery, response: httpx.Response) -> ReplayOutcome:
    """Describe the bot's response to one delivery."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = body.get("error") or body.get("detail") or response.text[:200]

    if response.status_code in (200, 202):
        status = str(body.get("status") or "accepted")
        detail = "already stored; the bot keeps the first copy" if status == "duplicate" else None
        return ReplayOutcome(delivery, status, detail)
    if response.status_code == 400:
        return ReplayOutcome(delivery, "invalid", str(message), ok=False)
    return ReplayOutcome(delivery, f"rejected ({response.status_code})", str(message), ok=False)


def find_webhook_secret(settings: Settings) -> str | None:
    """Return GITHUB_WEBHOOK_SECRET, else the secret the bot generated and stored in its database.

    Returns None when neither exists. A SQLite file that does not exist yet is not created.
    """
    if settings.github_webhook_secret is not None:
        return settings.github_webhook_secret.get_secret_value()
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or not Path(database).expanduser().is_file():
            return None
    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        with session_scope(engine) as session:
            return state.get_value(session=session, key=state.WEBHOOK_SECRET_KEY)
    except SQLAlchemyError as exc:
        logger.warning("cannot read the stored webhook secret: %s", getattr(exc, "orig", exc))
        return None
    finally:
        engine.dispose()
