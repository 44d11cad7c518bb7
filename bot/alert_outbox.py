"""The outbox path of FailureAlerter's alerts: each alert is queued as an outbox row in the
transaction that stores it, then sent from the calling thread with the alerter's bounded
retries, each attempt holding the row's lease.

The caller waits for the result, as the Python API promises. A row the caller could not
finish stays in the outbox: its Retry-After was longer than the caller waits, or the process
died. The bot's outbox worker then sends it with `ApiAlertSender` and records the outcome on
the alert. A webhook's signing secret is never stored, so only the process that queued a
webhook alert can finish it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import Session

from bot.alert_senders import HTTP_TIMEOUT_SECONDS, SENDERS, AlertChannel, AlertMessage, Outcome
from bot.config import Settings
from bot.outbox import PermanentFailure, RetryLater
from storage import alerts, incidents, outbox
from storage.db import session_scope
from storage.models_release import Alert
from storage.outbox import OutboxMessage

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

API_ALERT_KIND = "api_alert"
# Configuration keys that are never written to the database.
SECRET_KEYS = frozenset({"secret"})
LEASE = timedelta(minutes=5)
# The queued row is not due for the outbox worker before this, so the caller sends it first.
CALLER_HEAD_START = timedelta(minutes=5)
# Full channel configurations of alerts queued by this process, by alert id, so the outbox
# worker of the same process can still sign a webhook alert it finishes for the caller.
LIVE_CONFIGS: dict[int, dict[str, Any]] = {}


def queue_alert(
    *,
    session: Session,
    alert_id: int,
    channel: AlertChannel,
    config: Mapping[str, Any],
    target: str,
) -> OutboxMessage:
    """Queue an alert in the transaction that stored it; the row contains its configuration without secrets."""
    stored = {key: value for key, value in config.items() if key not in SECRET_KEYS}
    LIVE_CONFIGS[alert_id] = dict(config)
    return outbox.enqueue(
        session=session,
        kind=API_ALERT_KIND,
        target=target,
        payload={"alert_id": alert_id, "channel": channel.value, "config": stored},
        dedupe_key=f"{API_ALERT_KIND}:{alert_id}",
        not_before=incidents.now() + CALLER_HEAD_START,
    )


def deliver_queued(
    engine: Engine,
    message_id: int,
    alert: AlertMessage,
    channel: AlertChannel,
    config: Mapping[str, Any],
    *,
    settings: Settings,
    client: httpx.Client,
    max_attempts: int,
    base_backoff: float,
    max_wait: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Send a queued alert with up to `max_attempts` tries; waits double from `base_backoff`, or follow Retry-After.

    A Retry-After longer than `max_wait` seconds ends the tries here, since a script should
    not block that long. The row then waits in the outbox until the Retry-After has passed.
    """
    sender = SENDERS[channel]
    extra = {"alert_id": alert.alert_id, "channel": channel.value, "outbox_id": message_id}
    for attempt in range(1, max_attempts + 1):
        with session_scope(engine) as session:
            claimed = outbox.claim_message(session=session, message_id=message_id, lease=LEASE)
        if claimed is None:
            LIVE_CONFIGS.pop(alert.alert_id, None)
            return Outcome(
                sent=False, attempts=attempt - 1, error="another process is sending this alert"
            )
        try:
            response = sender(alert, config, settings, client)
        except PermanentFailure as exc:
            finish(engine, message_id, alert.alert_id, error=str(exc))
            logger.warning("alert failed: %s", exc, extra=extra)
            return Outcome(sent=False, attempts=attempt, error=str(exc))
        except RetryLater as exc:
            wait = (
                exc.retry_after
                if exc.retry_after is not None
                else base_backoff * 2 ** (attempt - 1)
            )
            if attempt == max_attempts:
                error = f"gave up after {attempt} attempts: {exc}"
                finish(engine, message_id, alert.alert_id, error=error)
                logger.warning("alert failed after %d attempts: %s", attempt, exc, extra=extra)
                return Outcome(sent=False, attempts=attempt, error=error)
            if wait > max_wait:
                with session_scope(engine) as session:
                    outbox.mark_retry(
                        session=session,
                        message_id=message_id,
                        error=str(exc),
                        retry_at=incidents.now() + timedelta(seconds=wait),
                    )
                logger.warning(
                    "alert throttled for %.0f s, left in the outbox: %s", wait, exc, extra=extra
                )
                return Outcome(
                    sent=False,
                    attempts=attempt,
                    error=f"throttled for {wait:.0f} s (more than {max_wait:.0f} s): {exc}",
                )
            with session_scope(engine) as session:
                # Not due for the outbox worker while this caller waits to try again.
                outbox.mark_retry(
                    session=session,
                    message_id=message_id,
                    error=str(exc),
                    retry_at=incidents.now() + timedelta(seconds=wait) + CALLER_HEAD_START,
                )
            logger.info("alert send will be retried in %.1f s: %s", wait, exc, extra=extra)
            sleep(wait)
            continue
        finish(engine, message_id, alert.alert_id, result=response)
        logger.info("alert sent", extra={**extra, "attempts": attempt})
        return Outcome(sent=True, attempts=attempt, response=response)
    raise AssertionError("unreachable: the loop returns on its last attempt")


def finish(
    engine: Engine,
    message_id: int,
    alert_id: int,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Mark the outbox row sent (with `result`) or failed (with `error`)."""
    LIVE_CONFIGS.pop(alert_id, None)
    with session_scope(engine) as session:
        if error is None:
            outbox.mark_sent(session=session, message_id=message_id, result=result or {})
        else:
            outbox.mark_failed(session=session, message_id=message_id, error=error)


class ApiAlertSender:
    """Outbox sender of `api_alert` rows a caller left unfinished; records the outcome on the alert."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def __call__(self, message: OutboxMessage) -> dict[str, Any]:
        """Send one queued alert once; the outbox retries it by its own rules."""
        alert_id = int(message.payload.get("alert_id") or 0)
        with Session(self.engine) as session:
            row = session.get(Alert, alert_id)
            if row is None:
                raise PermanentFailure(f"alert {alert_id} no longer exists")
            alert = AlertMessage(
                alert_id=alert_id,
                title=row.title,
                message=row.message,
                severity=row.severity,
                created_at=row.created_at,
            )
        channel = AlertChannel(message.payload.get("channel"))
        config = LIVE_CONFIGS.get(alert_id) or dict(message.payload.get("config") or {})
        if channel == AlertChannel.WEBHOOK and "secret" not in config:
            error = (
                f"alert {alert_id} cannot be signed: the webhook secret is never stored, and the process that "
                "queued the alert ended before sending it; send the alert again"
            )
            self.record(alert_id, message.attempts, error=error)
            raise PermanentFailure(error, code="secret_not_stored")
        import httpx

        try:
            with httpx.Client(timeout=HTTP_TIMEOUT_SECONDS) as client:
                response = SENDERS[channel](alert, config, self.settings, client)
        except PermanentFailure as exc:
            self.record(alert_id, message.attempts, error=str(exc))
            raise
        self.record(alert_id, message.attempts, response=response)
        LIVE_CONFIGS.pop(alert_id, None)
        return response

    def record(
        self,
        alert_id: int,
        attempts: int,
        *,
        response: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Store how sending ended on the alert row."""
        with session_scope(self.engine) as session:
            alerts.record_outcome(
                session=session,
                alert_id=alert_id,
                sent=error is None,
                attempts=attempts,
                error=error,
                response=response,
            )
