"""Redelivery sweep: requests that GitHub send again the webhook deliveries the bot missed.

GitHub does not retry a failed webhook delivery. The App's delivery list
(`GET /app/hook/deliveries`, App JWT only) has one row per attempt, newest first. A successful
redelivery adds a row and keeps the original failed one. So the sweep reads the list back to
the previous sweep's start minus an overlap, groups rows by `guid` (the `X-GitHub-Delivery`
value), and asks for one redelivery of each guid that has no 2xx row and that the bot has not
stored: `POST /app/hook/deliveries/{id}/attempts` with the newest failed row's id.

GitHub accepts redelivery only for deliveries from the past 3 days
(https://docs.github.com/en/webhooks/testing-and-troubleshooting-webhooks/redelivering-webhooks),
so the window never reaches further back. The start of a sweep is recorded only after the sweep
has read its whole window and its POSTs did not fail for a temporary reason; otherwise the next
sweep covers the same window again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from githubkit import AppAuthStrategy, GitHub
from githubkit.exception import GitHubException, RequestFailed
from sqlalchemy import Engine, select
from sqlmodel import Session

from bot.config import Settings
from bot.errors import BotError
from bot.github_client import TIMEOUT_SECONDS, USER_AGENT
from bot.observability import REDELIVERIES, record_api_error
from storage import state
from storage.db import session_scope
from storage.models import Delivery
from storage.types import utc_now

logger = logging.getLogger(__name__)

SWEEP_STATE_KEY = "redelivery_sweep_started_at"
REDELIVERY_MAX_AGE = timedelta(days=3)
PER_PAGE = 100
# A list longer than this many pages (50 000 attempts) is read over several sweeps.
MAX_PAGES = 500


class SweepIncomplete(BotError):
    """The delivery list could not be read to the end of the sweep's window."""


@dataclass(frozen=True)
class DeliveryAttempt:
    """One row of the App's delivery list: one attempt to deliver one webhook."""

    id: int
    guid: str
    delivered_at: datetime
    status_code: int

    @property
    def is_ok(self) -> bool:
        return 200 <= self.status_code < 300


@dataclass
class SweepResult:
    """Counts and outcomes of one sweep."""

    cutoff: datetime
    pages: int = 0
    rows: int = 0
    redelivered: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    recorded: bool = False


def build_app_client(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> GitHub[Any]:
    """Return a githubkit client that authenticates as the App itself (JWT), not an installation.

    `bot.github_client.GitHubApp` builds installation clients only; this one shares its user
    agent and timeout.
    """
    private_key = settings.github_private_key_pem()
    if settings.github_app_id is None or private_key is None:
        raise BotError("GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) must be set")
    return GitHub(
        AppAuthStrategy(settings.github_app_id, private_key),
        base_url=settings.github_api_url,
        transport=transport,
        # Each sweep must see the list as it is now, not a cached copy.
        http_cache=False,
        # No retry inside a sweep: a POST retried after a lost response could ask twice, and
        # the next sweep covers a failed window again anyway.
        auto_retry=False,
        user_agent=USER_AGENT,
        timeout=TIMEOUT_SECONDS,
    )


def parse_attempts(items: Iterable[object]) -> list[DeliveryAttempt]:
    """Read the rows of one page, skipping (with a WARNING) rows that lack a field the sweep needs."""
    attempts = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise TypeError(f"expected an object, got {type(item).__name__}")
            delivered_at = datetime.fromisoformat(str(item["delivered_at"]))
            if delivered_at.tzinfo is None:
                raise ValueError(f"delivered_at {item['delivered_at']!r} has no time zone")
            attempts.append(
                DeliveryAttempt(
                    id=int(item["id"]),
                    guid=str(item["guid"]),
                    delivered_at=delivered_at,
                    status_code=int(item.get("status_code") or 0),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("skipped an unreadable delivery list row: %s", exc)
    return attempts


def next_cursor(response: Any) -> str | None:
    """Return the `cursor` of the Link header's `rel="next"` URL, or None on the last page."""
    url = response.raw_response.links.get("next", {}).get("url")
    if not url:
        return None
    cursor = httpx.URL(url).params.get("cursor")
    if not cursor:
        # The list pages by cursor only; a next link without one cannot be followed safely.
        raise SweepIncomplete(f"the delivery list's next link {url!r} has no cursor parameter")
    return cursor


def read_window(github: GitHub[Any], cutoff: datetime, result: SweepResult) -> list[DeliveryAttempt]:
    """Read pages, newest first, until one contains a row older than `cutoff` or none is left."""
    attempts: list[DeliveryAttempt] = []
    cursor: str | None = None
    while True:
        if result.pages >= MAX_PAGES:
            raise SweepIncomplete(f"the delivery list has more than {MAX_PAGES} pages in the window")
        if cursor is None:
            response = github.rest.apps.list_webhook_deliveries(per_page=PER_PAGE)
        else:
            response = github.rest.apps.list_webhook_deliveries(per_page=PER_PAGE, cursor=cursor)
        result.pages += 1
        payload = response.json()
        if not isinstance(payload, list):
            raise SweepIncomplete(f"the delivery list page is a {type(payload).__name__}, expected a JSON array")
        page = parse_attempts(payload)
        result.rows += len(page)
        attempts.extend(row for row in page if row.delivered_at >= cutoff)
        if not page or min(row.delivered_at for row in page) < cutoff:
            return attempts
        cursor = next_cursor(response)
        if cursor is None:
            return attempts


def select_redeliveries(attempts: Iterable[DeliveryAttempt], stored_guids: set[str]) -> dict[str, int]:
    """Return, per guid that needs one, the id of the row to redeliver (its newest failed row)."""
    by_guid: dict[str, list[DeliveryAttempt]] = {}
    for attempt in attempts:
        by_guid.setdefault(attempt.guid, []).append(attempt)
    selected = {}
    for guid, rows in by_guid.items():
        if guid in stored_guids or any(row.is_ok for row in rows):
            continue
        newest = max(rows, key=lambda row: (row.delivered_at, row.id))
        selected[guid] = newest.id
    return selected


def find_stored_guids(*, session: Session, guids: Iterable[str]) -> set[str]:
    """Return which of `guids` the bot has stored as deliveries."""
    wanted = list(guids)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(session.scalars(select(Delivery.delivery_id).where(Delivery.delivery_id.in_(chunk))))  # type: ignore[attr-defined]
    return found


def sweep_cutoff(previous_start: datetime | None, now: datetime, settings: Settings) -> datetime:
    """Return the oldest delivery time this sweep must read."""
    if previous_start is None:
        cutoff = now - timedelta(hours=settings.redelivery_lookback_hours)
    else:
        cutoff = previous_start - timedelta(minutes=settings.redelivery_overlap_minutes)
    return max(cutoff, now - REDELIVERY_MAX_AGE)


def load_previous_start(engine: Engine) -> datetime | None:
    """Return the start of the last completed sweep, or None before the first one."""
    with Session(engine) as session:
        value = state.get_value(session=session, key=SWEEP_STATE_KEY)
    return datetime.fromisoformat(value) if value else None


def sweep(engine: Engine, settings: Settings, *, github: GitHub[Any], now: datetime | None = None) -> SweepResult:
    """Run one sweep: read the window, redeliver what was missed, record the start if complete."""
    started = now or utc_now()
    result = SweepResult(cutoff=sweep_cutoff(load_previous_start(engine), started, settings))

    attempts = read_window(github, result.cutoff, result)
    with Session(engine) as session:
        stored = find_stored_guids(session=session, guids={attempt.guid for attempt in attempts})
    selected = select_redeliveries(attempts, stored)

    temporary_failure = False
    for guid, attempt_id in selected.items():
        extra = {"delivery_id": guid, "github_delivery_id": attempt_id}
        try:
            github.rest.apps.redeliver_webhook_delivery(attempt_id)
        except RequestFailed as exc:
            status = exc.response.status_code
            record_api_error("github", status)
            result.failed[guid] = attempt_id
            # 5xx and rate limits pass; other 4xx (such as a delivery older than 3 days) do not.
            temporary_failure = temporary_failure or status >= 500 or status == 429
            logger.warning("webhook redelivery request failed with HTTP %s", status, extra=extra)
            continue
        REDELIVERIES.inc()
        result.redelivered[guid] = attempt_id
        logger.info("requested webhook redelivery", extra=extra)

    if temporary_failure:
        logger.warning("redelivery sweep left its window open for the next sweep", extra={"failed": len(result.failed)})
        return result
    with session_scope(engine) as session:
        state.set_value(session=session, key=SWEEP_STATE_KEY, value=started.isoformat())
    result.recorded = True
    logger.info(
        "redelivery sweep finished",
        extra={"pages": result.pages, "rows": result.rows, "redelivered": len(result.redelivered)},
    )
    return result


def run_redelivery_sweep(engine: Engine, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
    """Scheduled job: one sweep with a fresh App client; errors are logged and counted."""
    github = build_app_client(settings, transport=transport)
    try:
        sweep(engine, settings, github=github)
    except RequestFailed as exc:
        record_api_error("github", exc.response.status_code)
        logger.warning("redelivery sweep could not read the delivery list: HTTP %s", exc.response.status_code)
    except SweepIncomplete as exc:
        logger.warning("redelivery sweep incomplete: %s", exc)
    except GitHubException as exc:
        record_api_error("github", type(exc).__name__)
        logger.warning("redelivery sweep failed: %s", exc)
