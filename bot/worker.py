"""Background worker: processes stored webhook deliveries into facts, off the request path."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from bot.config import Settings
from bot.errors import InvalidPayload
from handlers.github import handler_for
from handlers.github.context import HandlerContext
from storage import deliveries
from storage.models import Delivery, DeliveryStatus

logger = logging.getLogger(__name__)

# A batch commits after this long even if it is not full, so the write lock is never held
# long enough to delay the webhook endpoint's inserts.
BATCH_SECONDS = 0.05


@dataclass
class BatchResult:
    """How many deliveries one batch processed, by outcome."""

    done: int = 0
    invalid: int = 0
    failed: int = 0
    ignored: int = 0

    @property
    def total(self) -> int:
        return self.done + self.invalid + self.failed + self.ignored


def process_delivery(session: Session, settings: Settings, delivery: Delivery) -> DeliveryStatus:
    """Run one delivery's handler inside a savepoint; return the outcome.

    A malformed payload or a handler error rolls back only this delivery's writes, marks it
    invalid or failed and logs a WARNING with its id; the batch goes on.
    """
    handler = handler_for(delivery.event)
    if handler is None:
        deliveries.mark_delivery(session=session, delivery=delivery, status=DeliveryStatus.IGNORED)
        return DeliveryStatus.IGNORED

    extra = {"delivery_id": delivery.delivery_id, "event": delivery.event, "action": delivery.action}
    for attempt in (1, 2):
        savepoint = session.begin_nested()
        try:
            payload = json.loads(delivery.body)
            if not isinstance(payload, dict):
                raise InvalidPayload(f"the payload must be a JSON object, got {type(payload).__name__}")
            context = HandlerContext(
                session=session,
                settings=settings,
                delivery_id=delivery.delivery_id,
                event=delivery.event,
                action=delivery.action,
            )
            handler(context, payload)
            session.flush()
            savepoint.commit()
        except (InvalidPayload, ValueError) as exc:
            savepoint.rollback()
            logger.warning("invalid payload: %s", exc, extra=extra)
            deliveries.mark_delivery(
                session=session, delivery=delivery, status=DeliveryStatus.INVALID, error=str(exc)
            )
            return DeliveryStatus.INVALID
        except IntegrityError as exc:
            # Another replica inserted the same fact between our read and our write; the
            # second try reads its row and merges into it.
            savepoint.rollback()
            if attempt == 1:
                continue
            logger.warning("delivery failed: %s", exc.orig, extra=extra)
            deliveries.mark_delivery(
                session=session, delivery=delivery, status=DeliveryStatus.FAILED, error=str(exc.orig)
            )
            return DeliveryStatus.FAILED
        except OperationalError:
            savepoint.rollback()
            raise
        except Exception as exc:  # noqa: BLE001 - a handler bug must not stop the worker
            savepoint.rollback()
            logger.exception("delivery failed", extra=extra)
            deliveries.mark_delivery(
                session=session, delivery=delivery, status=DeliveryStatus.FAILED, error=repr(exc)
            )
            return DeliveryStatus.FAILED
        break
    deliveries.mark_delivery(session=session, delivery=delivery, status=DeliveryStatus.DONE)
    return DeliveryStatus.DONE


def process_batch(engine: Engine, settings: Settings, *, limit: int) -> BatchResult:
    """Claim pending deliveries, process them and commit once; return the counts."""
    result = BatchResult()
    started = time.monotonic()
    with Session(engine, expire_on_commit=False) as session:
        with session.begin():
            for delivery in deliveries.claim_pending(session=session, limit=limit):
                outcome = process_delivery(session, settings, delivery)
                setattr(result, outcome.value, getattr(result, outcome.value) + 1)
                logger.debug(
                    "delivery processed",
                    extra={"delivery_id": delivery.delivery_id, "outcome": outcome.value},
                )
                if time.monotonic() - started > BATCH_SECONDS:
                    break
    return result


class Worker:
    """A thread that drains pending deliveries, woken by new ones or a poll interval."""

    def __init__(
        self, engine: Engine, settings: Settings, *, after_batch: Callable[[], None] | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        # Called after each batch that processed something, to wake the outbox sender.
        self.after_batch = after_batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._lock = threading.Lock()
        self._generation = 0
        self._thread: threading.Thread | None = None
        self.processed = 0

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread; deliveries left pending by an earlier process are processed first."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="delivery-worker", daemon=True)
        self._thread.start()
        logger.info("worker started")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish its batch and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        logger.info("worker stopped")

    def notify(self) -> None:
        """Wake the thread because a delivery was stored."""
        with self._lock:
            self._generation += 1
            self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no pending delivery is left; return False on timeout."""
        return self._idle.wait(timeout)

    def drain(self) -> int:
        """Process every pending delivery in the calling thread; return how many."""
        total = 0
        while True:
            result = process_batch(self.engine, self.settings, limit=self.settings.worker_batch_size)
            total += result.total
            if result.total == 0:
                return total

    def _run(self) -> None:
        backoff = self.settings.worker_poll_seconds
        while not self._stop.is_set():
            with self._lock:
                generation = self._generation
            try:
                result = process_batch(self.engine, self.settings, limit=self.settings.worker_batch_size)
            except OperationalError as exc:
                logger.warning("database unavailable, retrying in %.1f s: %s", backoff, exc.orig)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except Exception:  # noqa: BLE001 - the worker must outlive any single error
                logger.exception("worker batch failed")
                self._stop.wait(backoff)
                continue
            backoff = self.settings.worker_poll_seconds
            self.processed += result.total
            if result.total:
                if self.after_batch is not None:
                    self.after_batch()
                continue
            # Idle only if no delivery was stored after this batch began.
            with self._lock:
                if generation != self._generation:
                    continue
                self._idle.set()
            self._wake.wait(self.settings.worker_poll_seconds)
            self._wake.clear()
