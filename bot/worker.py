"""Background worker: processes stored webhook deliveries into facts, off the request path."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from bot.config import Settings
from bot.errors import InvalidPayload
from bot.observability import record_delivery_processed
from handlers.github import Handler, handler_for
from handlers.github.context import HandlerContext
from handlers.slack import react_to_delivery
from storage import deliveries, outbox
from storage.db import (
    background_engine,
    commit_without_flush_wait,
    session_scope,
    sqlite_write_gate,
)
from storage.metrics import flush_pending_metrics
from storage.models import Delivery, DeliveryStatus
from storage.prefetch import cached_payload, flush_pending_rows, prefetch_facts
from storage.prefetch import forget as forget_batch_facts

logger = logging.getLogger(__name__)

# A batch commits after this long even if it is not full, so the write lock is never held
# long enough to delay the webhook endpoint's inserts much.
BATCH_SECONDS = 0.05
# While webhook requests are in flight or another thread waits for SQLite's write lock, a
# batch ends after this long. A shorter bound made batches of one delivery, whose fixed cost
# (claim, prefetch, commit) kept the worker from keeping pace at 500 deliveries/s.
YIELDING_BATCH_SECONDS = 0.010
# Minimum number of deliveries a batch claims.
MIN_CLAIM = 4
# Maximum time the worker waits for in-flight webhook requests before it starts a batch anyway.
REQUEST_YIELD_SECONDS = 0.002
# The interval at which a thread holding the GIL hands it over (Python's default is 5 ms). The
# worker thread computes between its queries, so a webhook request waited up to that long at
# each of the several points where the event loop thread needs the GIL back.
SWITCH_INTERVAL_SECONDS = 0.001
# With this many webhook requests in flight (those waiting for the database included), a burst
# arrives faster than the endpoint acknowledges it. In the benchmark at 500 deliveries/s, 1 to
# 5 requests were in flight most of the time, and 16 or more in under 1 % of the samples.
BURST_REQUESTS = 16
# A burst has passed once BURST_REQUESTS were not in flight for this long. The count alone
# drops at each group commit, because the commit completes many requests at once.
BURST_QUIET_SECONDS = 0.05


@dataclass
class BatchResult:
    """How many deliveries one batch processed, by outcome."""

    done: int = 0
    invalid: int = 0
    failed: int = 0
    ignored: int = 0

    seconds: float = 0.0
    # Whether the batch queued outbox messages, so that the sender thread has work.
    queued_messages: bool = False

    @property
    def total(self) -> int:
        return self.done + self.invalid + self.failed + self.ignored


class NeedsSavepoints(Exception):
    """A delivery failed in a batch run without savepoints, so the batch runs again with them."""


def run_handlers(session: Session, settings: Settings, delivery: Delivery, handler: Handler) -> None:
    """Parse a delivery, then run its handler and the reactions that concern it."""
    payload = cached_payload(session, delivery)
    if payload is None:
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
    react_to_delivery(context, payload)


def process_delivery(
    session: Session, settings: Settings, delivery: Delivery, *, savepoints: bool = True
) -> DeliveryStatus:
    """Run one delivery's handler; return the outcome.

    With `savepoints`, the handler runs inside a savepoint: a malformed payload or a handler
    error rolls back only this delivery's writes, the delivery is marked invalid or failed
    with a WARNING naming its id, and the batch goes on. Without, any error but a database
    outage raises NeedsSavepoints, and the caller runs the batch again with savepoints.
    """
    handler = handler_for(delivery.event)
    if handler is None:
        deliveries.mark_delivery(session=session, delivery=delivery, status=DeliveryStatus.IGNORED)
        return DeliveryStatus.IGNORED

    if not savepoints:
        # Read before the handler runs: a failed flush rolls the transaction back, which
        # expires the delivery's attributes, and they cannot be loaded again in it.
        delivery_id = delivery.delivery_id
        try:
            run_handlers(session, settings, delivery, handler)
        except OperationalError:
            raise
        except Exception as exc:  # noqa: BLE001 - handled again with savepoints
            raise NeedsSavepoints(delivery_id) from exc
        deliveries.mark_delivery(session=session, delivery=delivery, status=DeliveryStatus.DONE)
        return DeliveryStatus.DONE

    extra = {"delivery_id": delivery.delivery_id, "event": delivery.event, "action": delivery.action}
    for attempt in (1, 2):
        savepoint = session.begin_nested()
        try:
            run_handlers(session, settings, delivery, handler)
            flush_pending_metrics(session)
            flush_pending_rows(session)
            session.flush()
            savepoint.commit()
        except (InvalidPayload, ValueError) as exc:
            savepoint.rollback()
            forget_batch_facts(session)
            logger.warning("invalid payload: %s", exc, extra=extra)
            deliveries.mark_delivery(
                session=session, delivery=delivery, status=DeliveryStatus.INVALID, error=str(exc)
            )
            return DeliveryStatus.INVALID
        except IntegrityError as exc:
            # Another replica inserted the same fact between our read and our write; the
            # second try reads its row and merges into it.
            savepoint.rollback()
            forget_batch_facts(session)
            if attempt == 1:
                logger.info("delivery retried after a concurrent insert: %s", exc.orig, extra=extra)
                continue
            logger.warning("delivery failed: %s", exc.orig, extra=extra)
            deliveries.mark_delivery(
                session=session, delivery=delivery, status=DeliveryStatus.FAILED, error=str(exc.orig)
            )
            return DeliveryStatus.FAILED
        except OperationalError:
            savepoint.rollback()
            forget_batch_facts(session)
            raise
        except Exception as exc:  # noqa: BLE001 - a handler bug must not stop the worker
            savepoint.rollback()
            forget_batch_facts(session)
            logger.exception("delivery failed", extra=extra)
            deliveries.mark_delivery(
                session=session, delivery=delivery, status=DeliveryStatus.FAILED, error=repr(exc)
            )
            return DeliveryStatus.FAILED
        break
    deliveries.mark_delivery(session=session, delivery=delivery, status=DeliveryStatus.DONE)
    return DeliveryStatus.DONE


def process_batch(
    engine: Engine,
    settings: Settings,
    *,
    limit: int,
    should_yield: Callable[[], bool] | None = None,
) -> BatchResult:
    """Claim pending deliveries, process them and commit once; return the counts.

    The batch first runs without a savepoint per delivery, which cost about a fifth of the
    processing time. If a delivery fails, everything rolls back and the batch runs again with
    savepoints, so that only the failing delivery's writes are undone. After
    YIELDING_BATCH_SECONDS the batch ends early, after the delivery in progress, once
    `should_yield` returns True or another thread waits for SQLite's write lock.
    """
    try:
        return run_batch(engine, settings, limit=limit, should_yield=should_yield, savepoints=False)
    except NeedsSavepoints as exc:
        logger.info(
            "batch rolled back, processing it again with savepoints", extra={"delivery_id": exc.args[0]}
        )
    return run_batch(engine, settings, limit=limit, should_yield=should_yield, savepoints=True)


def run_batch(
    engine: Engine,
    settings: Settings,
    *,
    limit: int,
    should_yield: Callable[[], bool] | None,
    savepoints: bool,
) -> BatchResult:
    """Claim pending deliveries, process them and commit once; return the counts."""
    result = BatchResult()
    started = time.monotonic()
    gate = sqlite_write_gate(engine)
    outcomes: list[tuple[Delivery, DeliveryStatus]] = []
    with Session(background_engine(engine), expire_on_commit=False) as session:
        with session.begin():
            commit_without_flush_wait(session)
            claimed = deliveries.claim_pending(session=session, limit=limit)
            # Kept referenced until the batch ends, so the session's cache holds them.
            prefetched = prefetch_facts(session=session, claimed=claimed)
            for delivery in claimed:
                outcome = process_delivery(session, settings, delivery, savepoints=savepoints)
                outcomes.append((delivery, outcome))
                elapsed = time.monotonic() - started
                if elapsed > BATCH_SECONDS:
                    break
                if elapsed > YIELDING_BATCH_SECONDS and (
                    (gate is not None and gate.has_waiters) or (should_yield is not None and should_yield())
                ):
                    break
            if not savepoints:
                flush_or_retry(session, outcomes)
        result.queued_messages = outbox.has_enqueued(session)
    del prefetched

    for delivery, outcome in outcomes:
        setattr(result, outcome.value, getattr(result, outcome.value) + 1)
        logger.info(
            "delivery processed",
            extra={"delivery_id": delivery.delivery_id, "event": delivery.event, "outcome": outcome.value},
        )
        record_delivery_processed(delivery.event, outcome.value)
    result.seconds = time.monotonic() - started
    return result


def flush_or_retry(session: Session, outcomes: list[tuple[Delivery, DeliveryStatus]]) -> None:
    """Write a batch's pending changes; an integrity error means running it with savepoints."""
    first = outcomes[0][0].delivery_id if outcomes else None
    try:
        flush_pending_metrics(session)
        flush_pending_rows(session)
        session.flush()
    except IntegrityError as exc:
        raise NeedsSavepoints(first) from exc


def isolate_oldest_delivery(engine: Engine, settings: Settings) -> None:
    """Process the oldest pending delivery alone; if even that fails, mark it failed.

    A batch fails as a whole only when an error escapes the per-delivery savepoints (in the
    prefetch, say). Without this step the same batch would be claimed and fail forever. A
    delivery marked failed keeps its body, so `release-bot replay --force` can process it
    again once the fault is fixed.
    """
    try:
        process_batch(engine, settings, limit=1)
        return
    except OperationalError:
        return
    except Exception as exc:  # noqa: BLE001 - recorded on the delivery below
        error = repr(exc)
    with session_scope(engine) as session:
        for delivery in deliveries.claim_pending(session=session, limit=1):
            logger.warning(
                "delivery failed outside its handler: %s",
                error,
                extra={"delivery_id": delivery.delivery_id, "event": delivery.event},
            )
            deliveries.mark_delivery(
                session=session, delivery=delivery, status=DeliveryStatus.FAILED, error=error
            )
            record_delivery_processed(delivery.event, DeliveryStatus.FAILED.value)


class Worker:
    """A thread that drains pending deliveries, woken by new ones or a poll interval."""

    def __init__(
        self, engine: Engine, settings: Settings, *, after_batch: Callable[[], None] | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        # Called after each batch that queued outbox messages, to wake the sender thread.
        self.after_batch = after_batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._lock = threading.Lock()
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._claim_limit = settings.worker_batch_size
        # Requests computing on the event loop, and all requests in flight (those waiting for
        # PostgreSQL's commit included).
        self._requests = 0
        self._in_flight = 0
        self._no_requests = threading.Event()
        self._no_requests.set()
        self._burst_seen = -math.inf
        # Seconds spent holding back for bursts since the worker was last idle.
        self._deferred = 0.0
        self.processed = 0

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread; deliveries left pending by an earlier process are processed first."""
        self._stop.clear()
        self._deferred = 0.0
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_SECONDS))
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

    def request_started(self) -> None:
        """Note a webhook request in flight; the thread pauses its batches for it."""
        self._computing_started()
        self._in_flight += 1
        if self._in_flight >= BURST_REQUESTS:
            self._burst_seen = time.monotonic()

    def request_finished(self) -> None:
        """Note the end of a webhook request noted by `request_started`."""
        self._computing_finished()
        self._in_flight = max(0, self._in_flight - 1)

    @contextlib.contextmanager
    def request_paused(self) -> Iterator[None]:
        """Let the thread run while a request noted by `request_started` waits without the CPU.

        The request still counts as in flight, so a burst of such requests still delays the thread.
        """
        self._computing_finished()
        try:
            yield
        finally:
            self._computing_started()

    def _computing_started(self) -> None:
        self._requests += 1
        self._no_requests.clear()

    def _computing_finished(self) -> None:
        self._requests -= 1
        if self._requests <= 0:
            self._requests = 0
            self._no_requests.set()

    def has_requests(self) -> bool:
        """Tell whether a webhook request is in flight and computing."""
        return self._requests > 0

    @property
    def requests_in_flight(self) -> int:
        """Webhook requests in flight, those waiting for the database included."""
        return self._in_flight

    def in_burst(self) -> bool:
        """Tell whether BURST_REQUESTS webhook requests are or were just now in flight."""
        return self._quiet_at() > time.monotonic()

    def _quiet_at(self) -> float:
        if self._in_flight >= BURST_REQUESTS:
            return time.monotonic() + BURST_QUIET_SECONDS
        return self._burst_seen + BURST_QUIET_SECONDS

    def _hold_back_for_burst(self) -> None:
        """Wait while a burst of requests is in flight, within the deferral budget.

        A burst is acknowledged first, and its deliveries are processed once it has passed.
        The worker waits at most WORKER_BURST_DEFER_SECONDS in all since it was last idle,
        which bounds the extra lag. Past that, under a load the bot cannot keep up with, the
        worker and the endpoint share the CPU as they do without a burst. The backlog still
        grows then, more slowly, and drains once the load drops.
        """
        started = time.monotonic()
        deadline = started + self.settings.worker_burst_defer_seconds - self._deferred
        while not self._stop.is_set():
            now = time.monotonic()
            quiet_at = self._quiet_at()
            if now >= quiet_at or now >= deadline:
                break
            self._stop.wait(min(quiet_at, deadline) - now)
        self._deferred += time.monotonic() - started

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no pending delivery is left; return False on timeout."""
        return self._idle.wait(timeout)

    def drain(self) -> int:
        """Process every pending delivery in the calling thread; return how many."""
        total = 0
        while True:
            result = process_batch(self.engine, self.settings, limit=self._claim_limit)
            self._adapt_claim_limit(result)
            total += result.total
            if result.total == 0:
                return total

    def _adapt_claim_limit(self, result: BatchResult) -> None:
        # A batch that ends early (time bound, or a waiting SQLite writer) leaves the rest of
        # its claimed rows unprocessed, and each of them was read with its body (10-20 KB
        # for a workflow_job). So the next claim follows how many the last batch got through.
        maximum = self.settings.worker_batch_size
        if result.total >= self._claim_limit:
            self._claim_limit = min(maximum, self._claim_limit * 2)
        else:
            self._claim_limit = min(maximum, max(MIN_CLAIM, result.total * 2))

    def _run(self) -> None:
        backoff = self.settings.worker_poll_seconds
        while not self._stop.is_set():
            with self._lock:
                generation = self._generation
            try:
                # Webhook requests go first, because GitHub records a delivery as failed when
                # the response takes over 10 s (docs.github.com, "Handling failed webhook
                # deliveries") and does not redeliver it, while processing may lag. This thread
                # shares the GIL with the event loop, so it waits while requests are in
                # flight, for at most REQUEST_YIELD_SECONDS so that it never starves.
                self._hold_back_for_burst()
                self._no_requests.wait(REQUEST_YIELD_SECONDS)
                result = process_batch(
                    self.engine, self.settings, limit=self._claim_limit, should_yield=self.has_requests
                )
                self._adapt_claim_limit(result)
            except OperationalError as exc:
                logger.warning("database unavailable, retrying in %.1f s: %s", backoff, exc.orig)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except Exception:  # noqa: BLE001 - the worker must outlive any single error
                logger.exception("worker batch failed; processing the oldest delivery on its own")
                try:
                    isolate_oldest_delivery(self.engine, self.settings)
                except Exception:  # noqa: BLE001 - the database itself fails, a missing table say
                    logger.exception("processing the oldest delivery alone failed; retrying in %.1f s", backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                continue
            backoff = self.settings.worker_poll_seconds
            self.processed += result.total
            if result.total:
                if self.after_batch is not None and result.queued_messages:
                    self.after_batch()
                continue
            # Idle only if no delivery was stored after this batch began.
            with self._lock:
                if generation != self._generation:
                    continue
                self._idle.set()
            self._deferred = 0.0
            self._wake.wait(self.settings.worker_poll_seconds)
            self._wake.clear()
