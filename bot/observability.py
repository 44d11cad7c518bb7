"""Prometheus metrics of the bot and the `GET /metrics` route.

Counters and histograms live in one process-wide registry and are updated where things happen
(webhook receiver, worker, outbox senders, scheduler). Queue gauges (pending deliveries,
processing lag, outbox depth) are read from the database on each scrape, so every replica
reports the same shared values, and a replica that just started reports them too.

Counters are per process: sum them across replicas in PromQL (`sum by (event) (rate(...))`).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from storage import deliveries, outbox
from storage.types import utc_now

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

DELIVERIES_RECEIVED = Counter(
    "release_bot_webhook_deliveries_received",
    "Verified webhook deliveries stored, by event (duplicates of a stored delivery id excluded).",
    ["event"],
    registry=REGISTRY,
)
DELIVERIES_PROCESSED = Counter(
    "release_bot_webhook_deliveries_processed",
    "Deliveries the worker finished, by event and outcome (done, ignored, invalid, failed).",
    ["event", "outcome"],
    registry=REGISTRY,
)
DELIVERIES_FAILED = Counter(
    "release_bot_webhook_deliveries_failed",
    "Deliveries that ended invalid or failed, by event and outcome.",
    ["event", "outcome"],
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "release_bot_api_errors",
    "Failed calls to an outside API, by service (github, slack) and error code or HTTP status.",
    ["service", "code"],
    registry=REGISTRY,
)
# Buckets in seconds, from a one-minute lint workflow to a two-hour release build.
BUILD_DURATION = Histogram(
    "release_bot_build_duration_seconds",
    "Durations of completed workflow run attempts, by repository and workflow.",
    ["repo", "workflow"],
    buckets=(30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200),
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "release_bot_scheduled_job_runs",
    "Scheduled job runs by job and outcome (ok, failed, skipped: another process held the lock).",
    ["job", "outcome"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "release_bot_scheduled_job_duration_seconds",
    "Time scheduled jobs took while holding their lock, by job.",
    ["job"],
    registry=REGISTRY,
)
REDELIVERIES = Counter(
    "release_bot_webhook_redeliveries_requested",
    "Webhook deliveries the bot asked GitHub to send again after they failed.",
    registry=REGISTRY,
)


def record_delivery_received(event: str) -> None:
    """Count a delivery the webhook endpoint stored."""
    received_counter(event).inc()


@lru_cache(maxsize=256)
def received_counter(event: str) -> Any:
    """Return the received-deliveries counter of one event, looked up once per event name."""
    return DELIVERIES_RECEIVED.labels(event=event)


def record_delivery_processed(event: str, outcome: str) -> None:
    """Count a delivery the worker finished; invalid and failed ones also count as failed."""
    DELIVERIES_PROCESSED.labels(event=event, outcome=outcome).inc()
    if outcome in ("invalid", "failed"):
        DELIVERIES_FAILED.labels(event=event, outcome=outcome).inc()


def record_api_error(service: str, code: str | int) -> None:
    """Count a failed Slack or GitHub API call, by its error code (`ratelimited`) or HTTP status."""
    API_ERRORS.labels(service=service, code=str(code)).inc()


def observe_build_duration(repo: str, workflow: str, seconds: float) -> None:
    """Add a completed run attempt's duration to the build duration histogram."""
    # Labelled by repository and workflow only: a run id label would create a series per run.
    BUILD_DURATION.labels(repo=repo, workflow=workflow).observe(max(0.0, seconds))


def age_seconds(since: datetime | None, now: datetime) -> float:
    """Return the seconds from `since` to `now`; 0 when there is nothing or the clock went back."""
    if since is None:
        return 0.0
    return max(0.0, (now - since).total_seconds())


class QueueCollector(Collector):
    """Gauges of the shared queues, read from the database on each scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utc_now()
        try:
            with Session(self.engine) as session:
                by_status = deliveries.count_by_status(session=session)
                oldest_pending = deliveries.oldest_pending_received_at(session=session)
                outbox_count, outbox_oldest = outbox.depth(session=session)
        except SQLAlchemyError as exc:
            # A scrape must still return the process counters when the database is down.
            logger.warning("metrics: database read failed: %s", exc)
            return
        pending = GaugeMetricFamily(
            "release_bot_webhook_deliveries_pending", "Stored deliveries the worker has not processed yet."
        )
        pending.add_metric([], by_status.get("pending", 0))
        yield pending
        lag = GaugeMetricFamily(
            "release_bot_delivery_processing_lag_seconds",
            "Seconds since the oldest pending delivery was received; 0 when none is pending.",
        )
        lag.add_metric([], age_seconds(oldest_pending, now))
        yield lag
        depth = GaugeMetricFamily("release_bot_outbox_depth", "Outgoing messages waiting to be sent.")
        depth.add_metric([], outbox_count)
        yield depth
        oldest = GaugeMetricFamily(
            "release_bot_outbox_oldest_age_seconds",
            "Seconds since the oldest waiting outgoing message was queued; 0 when none waits.",
        )
        oldest.add_metric([], age_seconds(outbox_oldest, now))
        yield oldest


class RegistryCollector(Collector):
    """Forwards the metrics of another registry, so one scrape returns both."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[object]:
        return self.registry.collect()


def build_app_registry(engine: Engine) -> CollectorRegistry:
    """Return the registry one app serves: the process metrics plus its database's queue gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RegistryCollector(REGISTRY))
    registry.register(QueueCollector(engine))
    return registry


router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Return the metrics in Prometheus text format; needs `Bearer METRICS_TOKEN` when that is set."""
    state = request.app.state
    expected = state.settings.metrics_token
    if expected is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            return PlainTextResponse(
                "missing or invalid bearer token: send 'Authorization: Bearer <METRICS_TOKEN>'\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    registry = getattr(state, "metrics_registry", None)
    if registry is None:
        registry = state.metrics_registry = build_app_registry(state.engine)
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
