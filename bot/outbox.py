"""Outbox sender: delivers queued messages through one sender per kind, outside transactions.

Senders are registered by kind (`slack`, `github_comment`, `webhook`, `email`, ...). A sender
returns the receiver's response fields (stored on the row) or raises RetryLater or
PermanentFailure. Network errors and 5xx responses are retried with exponential backoff and
jitter; a Retry-After holds back only the target that was throttled.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from bot.errors import BotError
from storage import outbox
from storage.db import session_scope
from storage.outbox import OutboxMessage
from storage.types import utc_now

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 12
BASE_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 600.0


class RetryLater(BotError):
    """A temporary failure: network error, 5xx, or a 429 with its Retry-After in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, throttle_target: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.throttle_target = throttle_target


class PermanentFailure(BotError):
    """A failure that another attempt cannot fix, such as Slack's `channel_not_found`."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


Sender = Callable[[OutboxMessage], dict[str, Any]]
FailureHook = Callable[[Session, OutboxMessage, PermanentFailure], None]

SENDERS: dict[str, Sender] = {}
FAILURE_HOOKS: list[FailureHook] = []


def register_sender(kind: str, sender: Sender) -> None:
    """Make `sender` deliver the messages of one kind."""
    SENDERS[kind] = sender


def register_failure_hook(hook: FailureHook) -> None:
    """Call `hook` in the transaction that marks a message failed for good (to pause its source)."""
    FAILURE_HOOKS.append(hook)


def backoff_seconds(attempts: int) -> float:
    """Return the wait before the next attempt: doubling from 2 s, capped at 10 min, with jitter."""
    delay = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** max(0, attempts - 1))
    return delay * random.uniform(0.5, 1.0)


def deliver_one(engine: Engine, message: OutboxMessage) -> str:
    """Send one claimed message and record the outcome; return it (`sent`, `retry` or `failed`)."""
    extra = {"outbox_id": message.id, "kind": message.kind, "target": message.target}
    sender = SENDERS.get(message.kind)
    try:
        if sender is None:
            raise PermanentFailure(f"no sender is registered for outbox kind {message.kind!r}")
        result = sender(message)
    except RetryLater as exc:
        wait = exc.retry_after if exc.retry_after is not None else backoff_seconds(message.attempts)
        retry_at = utc_now() + timedelta(seconds=wait)
        with session_scope(engine) as session:
            if message.attempts >= MAX_ATTEMPTS:
                outbox.mark_failed(session=session, message_id=message.id or 0, error=f"gave up after {message.attempts} attempts: {exc}")
                logger.warning("outbox message failed after retries: %s", exc, extra=extra)
                return "failed"
            outbox.mark_retry(session=session, message_id=message.id or 0, error=str(exc), retry_at=retry_at)
            if exc.throttle_target:
                outbox.throttle_target(session=session, kind=message.kind, target=message.target, until=retry_at)
        logger.warning("outbox send will be retried in %.1f s: %s", wait, exc, extra=extra)
        return "retry"
    except PermanentFailure as exc:
        with session_scope(engine) as session:
            outbox.mark_failed(session=session, message_id=message.id or 0, error=str(exc))
            for hook in FAILURE_HOOKS:
                hook(session, message, exc)
        logger.warning("outbox message failed: %s", exc, extra=extra)
        return "failed"
    except Exception as exc:  # noqa: BLE001 - a sender bug must not stop the outbox
        logger.exception("outbox sender raised", extra=extra)
        with session_scope(engine) as session:
            if message.attempts >= MAX_ATTEMPTS:
                outbox.mark_failed(
                    session=session,
                    message_id=message.id or 0,
                    error=f"gave up after {message.attempts} attempts: {exc!r}",
                )
                return "failed"
            outbox.mark_retry(
                session=session,
                message_id=message.id or 0,
                error=repr(exc),
                retry_at=utc_now() + timedelta(seconds=backoff_seconds(message.attempts)),
            )
        return "retry"
    with session_scope(engine) as session:
        outbox.mark_sent(session=session, message_id=message.id or 0, result=result)
    logger.info("outbox message sent", extra=extra)
    return "sent"


def deliver_due(engine: Engine, *, limit: int = 50) -> int:
    """Claim and send the messages that are due now; return how many were claimed."""
    with session_scope(engine) as session:
        messages = list(outbox.claim_due(session=session, limit=limit, lease=LEASE))
    for message in messages:
        deliver_one(engine, message)
    return len(messages)


# The maximum wait between batches while the database fails.
MAX_FAILURE_WAIT_SECONDS = 30.0


class OutboxWorker:
    """A thread that sends due outbox messages, woken by new ones or a poll interval."""

    def __init__(self, engine: Engine, *, poll_seconds: float = 1.0) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start sending; messages left pending or leased by a dead process are picked up."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-worker", daemon=True)
        self._thread.start()
        logger.info("outbox worker started")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the message being sent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def notify(self) -> None:
        """Wake the thread because a message was queued."""
        self._wake.set()

    def _run(self) -> None:
        # Seconds to wait after a failed batch, doubled on each failure in a row, so that a
        # database that stays down is not logged once per poll.
        backoff = self.poll_seconds
        while not self._stop.is_set():
            failed = True
            try:
                claimed = deliver_due(self.engine)
                failed = False
            except OperationalError as exc:
                logger.warning("outbox: database unavailable, retrying in %.1f s: %s", backoff, exc.orig)
            except Exception:  # noqa: BLE001 - the outbox must outlive any single error
                logger.exception("outbox batch failed, retrying in %.1f s", backoff)
            if failed:
                self._wake.wait(backoff)
                backoff = min(backoff * 2, MAX_FAILURE_WAIT_SECONDS)
            elif claimed:
                backoff = self.poll_seconds
                continue
            else:
                backoff = self.poll_seconds
                self._wake.wait(self.poll_seconds)
            self._wake.clear()
