"""FailureAlerter: send release alerts to Slack, a signed webhook, email or the console.

Every alert is stored before it is sent and updated with how sending ended, so `get_alerts`
shows failures too. Channel configurations live in the FailureAlerter object; secrets in them
(a webhook's signing secret) are never logged or stored. Each alert is queued in the outbox
with its row and sent by `bot.alert_outbox.deliver_queued`, with bounded retries.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from bot import alert_outbox, alert_senders
from bot.alert_senders import SEVERITIES, AlertChannel, AlertMessage
from bot.config import Settings, get_settings
from bot.engines import resolve_engine
from storage import alerts
from storage.db import session_scope
from storage.metric_filter import as_utc
from storage.models_release import Alert

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

__all__ = ["AlertChannel", "AlertRecord", "FailureAlerter"]

MAX_TITLE_CHARS = 500
MAX_MESSAGE_CHARS = 40_000

Handler = Callable[["AlertRecord"], None]


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert and how sending it ended (`status` is pending, sent or failed)."""

    id: int
    channel: AlertChannel
    target: str | None
    severity: str
    title: str
    message: str
    status: str
    attempts: int
    error: str | None
    response: dict[str, Any] | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def from_row(cls, row: Alert) -> AlertRecord:
        """Build a record from its `alert` row."""
        return cls(
            id=int(row.id or 0),
            channel=AlertChannel(row.channel),
            target=row.target,
            severity=row.severity,
            title=row.title,
            message=row.message,
            status=row.status,
            attempts=row.attempts,
            error=row.error,
            response=json.loads(row.response) if row.response else None,
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
            sent_at=as_utc(row.sent_at),
        )


def check_channel(channel: object) -> AlertChannel:
    """Return an AlertChannel, or raise ValueError naming the accepted ones."""
    try:
        return AlertChannel(channel.value if isinstance(channel, AlertChannel) else channel)
    except ValueError:
        names = ", ".join(f"AlertChannel.{member.name}" for member in AlertChannel)
        raise ValueError(f"invalid channel {channel!r}: use one of {names}") from None


class FailureAlerter:
    """Sends alerts through configured channels and stores each alert with its outcome."""

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        engine: Engine | None = None,
        database_url: str | None = None,
        max_attempts: int = 4,
        base_backoff: float = 1.0,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or get_settings()
        self.engine = resolve_engine(engine, database_url or (self.settings.database_url if settings else None))
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_wait = max_wait
        self._sleep = sleep
        self._channels: dict[AlertChannel, dict[str, Any]] = {}
        self._handlers: dict[AlertChannel, list[Handler]] = {}
        self._client: httpx.Client | None = None

    def configure_channel(self, channel: AlertChannel | str, config: Mapping[str, Any]) -> None:
        """Set up a channel, replacing its earlier configuration.

        SLACK: {"channel": "C0123ABCD"} (with SLACK_BOT_TOKEN) or {"webhook": URL}. WEBHOOK:
        {"url": URL, "secret": SECRET}. EMAIL: {"to": ADDRESSES} plus optional "from", "host",
        "port", "username", "starttls" and "ca_file", defaulting to the SMTP_* settings.
        CONSOLE: {} or {"stream": "stderr"}. Raises ValueError naming an invalid field.
        """
        checked = check_channel(channel)
        self._channels[checked] = alert_senders.check_config(checked, config, self.settings)
        logger.info(
            "alert channel configured",
            extra={"channel": checked.value, "target": alert_senders.describe_target(checked, self._channels[checked])},
        )

    def list_channels(self) -> list[AlertChannel]:
        """Return the channels that can take alerts: configured ones and ones with handlers."""
        return [channel for channel in AlertChannel if channel in self._channels or channel in self._handlers]

    def register_handler(self, channel: AlertChannel | str, handler: Handler) -> None:
        """Call `handler` with each alert stored for `channel`, after the channel's own delivery.

        A channel with handlers and no configuration delivers through its handlers only; there
        an exception from a handler marks the alert failed. After a configured channel's
        delivery, a handler's exception is logged and changes nothing.
        """
        if not callable(handler):
            raise ValueError(f"invalid handler {handler!r}: expected a function taking an AlertRecord")
        self._handlers.setdefault(check_channel(channel), []).append(handler)

    def send_alert(
        self,
        title: str,
        message: str,
        channel: AlertChannel | str | None = None,
        severity: str = "info",
    ) -> bool:
        """Store and send an alert; return True when every channel accepted it.

        Without `channel`, the alert goes to every configured channel. Raises ValueError for
        an empty title, an unknown severity or a channel that is not configured.
        """
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"invalid title {title!r}: expected a non-empty string")
        if not isinstance(message, str):
            raise ValueError(f"invalid message {message!r}: expected a string")
        if severity not in SEVERITIES:
            raise ValueError(f"invalid severity {severity!r}: use one of {', '.join(SEVERITIES)}")
        if channel is None:
            targets = self.list_channels()
            if not targets:
                raise ValueError("no alert channel is configured: call configure_channel first")
        else:
            checked = check_channel(channel)
            if checked not in self._channels and checked not in self._handlers:
                raise ValueError(
                    f"channel {checked.value!r} is not configured: call "
                    f"configure_channel(AlertChannel.{checked.name}, {{...}}) first"
                )
            targets = [checked]
        title, message = title[:MAX_TITLE_CHARS], message[:MAX_MESSAGE_CHARS]
        # Every channel gets the alert, even after one has failed.
        outcomes = [self._send(target, title, message, severity) for target in targets]
        return all(outcomes)

    def _send(self, channel: AlertChannel, title: str, message: str, severity: str) -> bool:
        config = self._channels.get(channel)
        target = alert_senders.describe_target(channel, config) if config is not None else "handlers"
        with session_scope(self.engine) as session:
            row = alerts.create_alert(
                session=session, channel=channel.value, target=target, severity=severity, title=title, message=message
            )
            # Queued with the alert, so a process that dies before sending leaves it in the outbox.
            queued = (
                alert_outbox.queue_alert(session=session, alert_id=int(row.id or 0), channel=channel, config=config, target=target)
                if config is not None
                else None
            )
        alert = AlertMessage(alert_id=int(row.id or 0), title=title, message=message, severity=severity, created_at=row.created_at)

        if config is not None and queued is not None:
            outcome = alert_outbox.deliver_queued(
                self.engine,
                int(queued.id or 0),
                alert,
                channel,
                config,
                settings=self.settings,
                client=self._http(),
                max_attempts=self.max_attempts,
                base_backoff=self.base_backoff,
                max_wait=self.max_wait,
                sleep=self._sleep,
            )
        else:
            outcome = alert_senders.Outcome(sent=True, attempts=1)
        with session_scope(self.engine) as session:
            row = alerts.record_outcome(
                session=session,
                alert_id=alert.alert_id,
                sent=outcome.sent,
                attempts=outcome.attempts,
                error=outcome.error,
                response=outcome.response,
            )
        record = AlertRecord.from_row(row)
        return self._run_handlers(record, handlers_deliver=config is None)

    def _run_handlers(self, record: AlertRecord, *, handlers_deliver: bool) -> bool:
        extra = {"alert_id": record.id, "channel": record.channel.value}
        for handler in self._handlers.get(record.channel, []):
            try:
                handler(record)
            except Exception as exc:  # a user's handler must not break alerting
                logger.exception("alert handler failed", extra=extra)
                if handlers_deliver:
                    with session_scope(self.engine) as session:
                        alerts.record_outcome(
                            session=session, alert_id=record.id, sent=False, attempts=1,
                            error=f"handler {getattr(handler, '__name__', handler)!r} raised {exc!r}",
                        )
                    return False
        return record.status == alerts.SENT

    def get_alerts(self, channel: AlertChannel | str | None = None, limit: int = 100) -> list[AlertRecord]:
        """Return stored alerts, newest first, of one channel or of all."""
        channel_value = check_channel(channel).value if channel is not None else None
        with session_scope(self.engine) as session:
            rows = alerts.list_alerts(session=session, channel=channel_value, limit=limit)
            return [AlertRecord.from_row(row) for row in rows]

    def _http(self) -> httpx.Client:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=alert_senders.HTTP_TIMEOUT_SECONDS)
        return self._client

    def close(self) -> None:
        """Close the HTTP connections."""
        if self._client is not None:
            self._client.close()
            self._client = None
