"""Stored alerts: each one is written before it is sent and updated with how sending ended."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from storage.models_release import Alert
from storage.types import utc_now

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


def create_alert(
    *, session: Session, channel: str, target: str | None, severity: str, title: str, message: str
) -> Alert:
    """Store a new pending alert and return it with its id."""
    alert = Alert(channel=channel, target=target, severity=severity, title=title, message=message, status=PENDING)
    session.add(alert)
    session.flush()
    return alert


def record_outcome(
    *,
    session: Session,
    alert_id: int,
    sent: bool,
    attempts: int,
    error: str | None = None,
    response: dict[str, Any] | None = None,
) -> Alert:
    """Mark an alert sent or failed, with its attempts, error and the receiver's response."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise LookupError(f"alert {alert_id} not found")
    now = utc_now()
    alert.status = SENT if sent else FAILED
    alert.attempts = attempts
    alert.error = error
    alert.response = json.dumps(response, default=str) if response else None
    alert.updated_at = now
    alert.sent_at = now if sent else None
    session.add(alert)
    return alert


def list_alerts(*, session: Session, channel: str | None = None, limit: int = 100) -> list[Alert]:
    """Return alerts, newest first."""
    statement = select(Alert).order_by(Alert.id.desc()).limit(limit)  # type: ignore[union-attr]
    if channel is not None:
        statement = statement.where(Alert.channel == channel)
    return list(session.scalars(statement).all())
