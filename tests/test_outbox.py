"""Outbox delivery: retries, Retry-After throttling of one target, permanent failures, leases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session

from bot import outbox as sender
from bot.outbox import PermanentFailure, RetryLater
from storage import outbox
from storage.db import create_db_engine, session_scope
from storage.outbox import OutboxMessage, OutboxStatus
from storage.types import utc_now


@pytest.fixture
def engine(database_url: str) -> Any:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[OutboxMessage]:
    """Register a `test` sender that records calls and follows the payload's `fail` plan."""
    made: list[OutboxMessage] = []

    def send(message: OutboxMessage) -> dict[str, Any]:
        made.append(message)
        plan = message.payload.get("fail", [])
        if len(made) <= len(plan):
            failure = plan[len(made) - 1]
            if failure == "retry_after":
                raise RetryLater("ratelimited", retry_after=30, throttle_target=True)
            if failure == "permanent":
                raise PermanentFailure("channel_not_found", code="channel_not_found")
            raise RetryLater("HTTP 503")
        return {"ts": f"1717400000.00010{len(made)}"}

    monkeypatch.setitem(sender.SENDERS, "test", send)
    return made


def queue(engine: Any, target: str, payload: dict[str, Any], key: str | None = None) -> int:
    with session_scope(engine) as session:
        return outbox.enqueue(session=session, kind="test", target=target, payload=payload, dedupe_key=key).id or 0


def load(engine: Any, message_id: int) -> OutboxMessage:
    with Session(engine) as session:
        message = outbox.get_message(session=session, message_id=message_id)
        assert message is not None
        return message


def test_sent_message_keeps_result(engine: Any, calls: list[OutboxMessage]) -> None:
    message_id = queue(engine, "C1", {"text": "hi"})
    assert sender.deliver_due(engine) == 1
    message = load(engine, message_id)
    assert message.status == OutboxStatus.SENT.value
    assert message.result == {"ts": "1717400000.000101"}
    assert sender.deliver_due(engine) == 0
    assert len(calls) == 1


def test_dedupe_key_queues_once(engine: Any, calls: list[OutboxMessage]) -> None:
    first = queue(engine, "C1", {"text": "hi"}, key="alert:1")
    second = queue(engine, "C1", {"text": "hi"}, key="alert:1")
    assert first == second


def test_retry_after_holds_only_that_target(engine: Any, calls: list[OutboxMessage]) -> None:
    throttled = queue(engine, "C1", {"fail": ["retry_after"]})
    assert sender.deliver_due(engine) == 1
    later = queue(engine, "C1", {})
    other = queue(engine, "C2", {})

    assert sender.deliver_due(engine) == 1
    assert load(engine, other).status == OutboxStatus.SENT.value
    assert load(engine, later).status == OutboxStatus.PENDING.value
    message = load(engine, throttled)
    assert message.status == OutboxStatus.PENDING.value
    wait = (message.next_attempt_at - utc_now()).total_seconds()
    assert 28 <= wait <= 30


def test_temporary_error_backs_off(engine: Any, calls: list[OutboxMessage]) -> None:
    message_id = queue(engine, "C1", {"fail": ["503"]})
    sender.deliver_due(engine)
    message = load(engine, message_id)
    assert message.status == OutboxStatus.PENDING.value
    assert message.last_error == "HTTP 503"
    assert message.next_attempt_at > utc_now()


def test_permanent_failure_calls_hooks(engine: Any, calls: list[OutboxMessage], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []
    monkeypatch.setattr(sender, "FAILURE_HOOKS", [lambda session, message, exc: seen.append(exc.code)])
    message_id = queue(engine, "C1", {"fail": ["permanent"]})
    sender.deliver_due(engine)
    assert load(engine, message_id).status == OutboxStatus.FAILED.value
    assert seen == ["channel_not_found"]


def test_expired_lease_is_claimed_again(engine: Any, calls: list[OutboxMessage]) -> None:
    message_id = queue(engine, "C1", {})
    with session_scope(engine) as session:
        claimed = outbox.claim_due(session=session, limit=10, lease=timedelta(minutes=5))
        assert [message.id for message in claimed] == [message_id]
    # The process that claimed it died before sending: nothing is claimed until the lease ends.
    assert sender.deliver_due(engine) == 0
    with session_scope(engine) as session:
        later = outbox.claim_due(session=session, limit=10, lease=timedelta(minutes=5), now=utc_now() + timedelta(minutes=6))
    assert [message.id for message in later] == [message_id]


def test_sender_bug_gives_up_after_max_attempts(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(message: OutboxMessage) -> dict[str, Any]:
        raise KeyError("ts")

    monkeypatch.setitem(sender.SENDERS, "test", broken)
    message_id = queue(engine, "C1", {})
    for attempt in range(1, sender.MAX_ATTEMPTS + 1):
        with session_scope(engine) as session:
            claimed = outbox.claim_due(
                session=session, limit=1, lease=timedelta(minutes=5), now=utc_now() + timedelta(days=attempt)
            )
        assert [message.id for message in claimed] == [message_id]
        sender.deliver_one(engine, claimed[0])

    message = load(engine, message_id)
    assert message.status == OutboxStatus.FAILED.value
    assert "gave up after 12 attempts" in (message.last_error or "")
