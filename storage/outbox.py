"""The outbox: outgoing messages recorded in the same transaction as the change that caused them.

A row is claimed by setting it `sending` with a lease, sent outside any transaction, then
marked `sent` with what the receiver returned (a Slack `ts`, a GitHub comment id). A process
that dies while sending leaves the lease to expire, and the row is claimed again.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Index, Text, UniqueConstraint, func, or_, select, update
from sqlmodel import Field, Session, SQLModel

from storage.types import BigInt, UTCDateTime, utc_now


class OutboxStatus(str, enum.Enum):
    """Delivery state of an outgoing message."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(SQLModel, table=True):
    """One outgoing message to Slack, GitHub, a webhook receiver or a mail server."""

    __tablename__ = "outbox_message"

    id: int | None = Field(default=None, sa_type=BigInt, primary_key=True)
    kind: str = Field(max_length=40)
    target: str = Field(max_length=500)
    dedupe_key: str | None = Field(default=None, max_length=300)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = Field(default=OutboxStatus.PENDING.value, max_length=20)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
    result: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        Index("ix_outbox_message_status_next", "status", "next_attempt_at"),
    )


class TargetThrottle(SQLModel, table=True):
    """A target (such as one Slack channel) that must not be called before `until`."""

    __tablename__ = "target_throttle"

    kind: str = Field(primary_key=True, max_length=40)
    target: str = Field(primary_key=True, max_length=500)
    until: datetime = Field(sa_type=UTCDateTime, nullable=False)


# Set in `Session.info` by `enqueue`.
ENQUEUED_KEY = "release_bot.outbox_enqueued"


def enqueue(
    *,
    session: Session,
    kind: str,
    target: str,
    payload: dict[str, Any],
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> OutboxMessage:
    """Record a message to send; with a dedupe key, a second call returns the first message.

    Call it inside the transaction that records the change, so both commit or neither does.
    """
    if dedupe_key is not None:
        existing = session.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key)
        ).first()
        if existing is not None:
            return existing
    message = OutboxMessage(
        kind=kind,
        target=target,
        payload=payload,
        dedupe_key=dedupe_key,
        next_attempt_at=not_before or utc_now(),
    )
    session.add(message)
    session.flush()
    session.info[ENQUEUED_KEY] = True
    return message


def has_enqueued(session: Session) -> bool:
    """Tell whether `enqueue` added a message in this session, so its sender is worth waking."""
    return bool(session.info.get(ENQUEUED_KEY))


def claim_due(*, session: Session, limit: int, lease: timedelta, now: datetime | None = None) -> Sequence[OutboxMessage]:
    """Claim due messages whose target is not throttled, leasing them to this process."""
    now = now or utc_now()
    throttled = select(TargetThrottle.target).where(
        TargetThrottle.kind == OutboxMessage.kind,
        TargetThrottle.target == OutboxMessage.target,
        TargetThrottle.until > now,
    )
    statement = (
        select(OutboxMessage)
        .where(
            or_(
                OutboxMessage.status == OutboxStatus.PENDING.value,
                (OutboxMessage.status == OutboxStatus.SENDING.value)
                & (OutboxMessage.lease_until < now),  # type: ignore[operator]
            ),
            OutboxMessage.next_attempt_at <= now,
            ~throttled.exists(),
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    messages = session.scalars(statement).all()
    for message in messages:
        message.status = OutboxStatus.SENDING.value
        message.lease_until = now + lease
        message.attempts += 1
        session.add(message)
    return messages


def claim_message(
    *, session: Session, message_id: int, lease: timedelta, now: datetime | None = None
) -> OutboxMessage | None:
    """Claim one message by id, due or not, for a caller that sends it itself; None if it is
    sent, failed, or leased by a sender that is still alive."""
    now = now or utc_now()
    message = session.scalars(
        select(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            or_(
                OutboxMessage.status == OutboxStatus.PENDING.value,
                (OutboxMessage.status == OutboxStatus.SENDING.value)
                & (OutboxMessage.lease_until < now),  # type: ignore[operator]
            ),
        )
        .with_for_update(skip_locked=True)
    ).first()
    if message is None:
        return None
    message.status = OutboxStatus.SENDING.value
    message.lease_until = now + lease
    message.attempts += 1
    session.add(message)
    return message


def mark_sent(*, session: Session, message_id: int, result: dict[str, Any]) -> None:
    """Record that a message was delivered and what the receiver returned."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status=OutboxStatus.SENT.value, result=result, sent_at=utc_now(), lease_until=None, last_error=None)
    )


def mark_retry(*, session: Session, message_id: int, error: str, retry_at: datetime) -> None:
    """Put a message back in the queue for another attempt at `retry_at`."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status=OutboxStatus.PENDING.value, next_attempt_at=retry_at, last_error=error, lease_until=None)
    )


def mark_failed(*, session: Session, message_id: int, error: str) -> None:
    """Record that a message cannot be delivered; it is not tried again."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status=OutboxStatus.FAILED.value, last_error=error, lease_until=None)
    )


def throttle_target(*, session: Session, kind: str, target: str, until: datetime) -> None:
    """Hold back every message to one target until a time, as a 429 response's Retry-After requests."""
    row = session.get(TargetThrottle, (kind, target))
    if row is None:
        row = TargetThrottle(kind=kind, target=target, until=until)
    else:
        row.until = max(row.until, until)
    session.add(row)


def get_message(*, session: Session, message_id: int) -> OutboxMessage | None:
    """Return one outbox message."""
    return session.get(OutboxMessage, message_id)


def find_sent_result(*, session: Session, dedupe_key: str) -> dict[str, Any] | None:
    """Return what the receiver returned for a sent message, such as a Slack `ts`."""
    message = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.dedupe_key == dedupe_key, OutboxMessage.status == OutboxStatus.SENT.value
        )
    ).first()
    return message.result if message else None


def depth(*, session: Session) -> tuple[int, datetime | None]:
    """Return how many messages wait to be sent and when the oldest was created."""
    count, oldest = session.execute(
        select(func.count(OutboxMessage.id), func.min(OutboxMessage.created_at)).where(
            OutboxMessage.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENDING.value])  # type: ignore[attr-defined]
        )
    ).one()
    return count, oldest
