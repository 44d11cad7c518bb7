"""Scheduled jobs: an APScheduler 3.x `AsyncIOScheduler` started with the server.

Job store: the in-memory store, with every job added at start with `replace_existing=True`,
not a `SQLAlchemyJobStore` in the bot's database. APScheduler 3.x does not coordinate several
schedulers, and its user guide says a job store must never be shared between schedulers: two
replicas sharing one would race on the same rows and run jobs twice or miss them. The jobs are
fixed intervals taken from the settings, so nothing needs to survive a restart in the store.
What must survive lives in the bot's own tables instead: the redelivery sweep keeps its last
start in `app_state`, and per-period jobs record their periods in `job_run`.

Each replica runs the same schedule. A run first takes the job's database lock
(`storage.locks.job_lock`); a replica that does not get it skips that run. Missed runs
coalesce into one, and one job never runs twice at once in one process. Jobs are plain
functions of `(engine, settings)` that open their own sessions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from bot import digest
from bot.config import Settings
from bot.observability import JOB_DURATION, JOB_RUNS
from handlers.github.reactions import alerts as alert_reactions
from handlers.github.reactions import stuck_runs
from storage import locks, metric_rollups, retention
from storage.db import session_scope
from storage.types import utc_now

# APScheduler is imported when the scheduler starts, so that SCHEDULER_ENABLED=false leaves it out.
if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

logger = logging.getLogger(__name__)

JobFunction = Callable[[Engine, Settings], object]

# A run that could not start on time (the process was busy or asleep) still runs if it is at
# most this late. Later ones are skipped, and several missed runs coalesce into one.
MISFIRE_GRACE_SECONDS = 300
RETENTION_CHECK_SECONDS = 3600.0
RETENTION_FIRST_DELAY_SECONDS = 120.0
ROLLUP_FIRST_DELAY_SECONDS = 180.0


@dataclass(frozen=True)
class ScheduledJob:
    """A job the scheduler runs every `interval_seconds`, first after `first_delay_seconds`."""

    id: str
    function: JobFunction
    interval_seconds: float
    first_delay_seconds: float


JobFactory = Callable[[Settings], ScheduledJob | None]
JOB_FACTORIES: list[JobFactory] = []


def register_job(factory: JobFactory) -> JobFactory:
    """Add a job to every scheduler started later; the factory returns None to leave it off."""
    JOB_FACTORIES.append(factory)
    return factory


def run_redelivery(engine: Engine, settings: Settings) -> None:
    """Job: ask GitHub to redeliver the webhooks the bot missed."""
    from bot.redelivery import run_redelivery_sweep

    run_redelivery_sweep(engine, settings)


@register_job
def redelivery_job(settings: Settings) -> ScheduledJob | None:
    """Return the redelivery sweep job: every 10 minutes by default, and within 90 s of start-up."""
    if not settings.redelivery_enabled:
        logger.info("redelivery sweep is off: REDELIVERY_ENABLED is false")
        return None
    if not settings.has_github_app:
        logger.info("redelivery sweep is off: set GITHUB_APP_ID and GITHUB_PRIVATE_KEY to enable it")
        return None
    return ScheduledJob(
        id="redelivery",
        function=run_redelivery,
        interval_seconds=settings.redelivery_interval_seconds,
        first_delay_seconds=settings.redelivery_first_delay_seconds,
    )


def run_retention(engine: Engine, settings: Settings, *, now: datetime | None = None) -> bool:
    """Job: prune old deliveries and steps once per UTC day; return whether this call pruned."""
    now = now or utc_now()
    period = now.date().isoformat()
    with session_scope(engine) as session:
        if locks.has_period(session=session, job="retention", period=period):
            return False
    retention.prune(
        engine,
        now=now,
        deliveries_keep=timedelta(days=settings.retention_deliveries_days),
        steps_keep=timedelta(days=settings.retention_steps_days),
    )
    # Metric points are never pruned, so the rollups built from them stay valid.
    # Pruning is idempotent, so the day is recorded after it: a run cut short is redone.
    with session_scope(engine) as session:
        locks.claim_period(session=session, job="retention", period=period, now=now)
    return True


@register_job
def retention_job(settings: Settings) -> ScheduledJob | None:
    """Return the retention job, checked hourly so that a restart near midnight cannot skip a day."""
    return ScheduledJob(
        id="retention",
        function=run_retention,
        interval_seconds=RETENTION_CHECK_SECONDS,
        first_delay_seconds=RETENTION_FIRST_DELAY_SECONDS,
    )


# Days the daily rollup repair rewrites, today included; a full rebuild is `rebuild_rollups`.
ROLLUP_REPAIR_DAYS = 3


def run_rollup_refresh(engine: Engine, settings: Settings, *, now: datetime | None = None) -> bool:
    """Job: rebuild the metric rollups once per UTC day; return whether this call rebuilt them.

    `upsert_metric` keeps the rollups current as points are written; the daily rebuild repairs
    the last ROLLUP_REPAIR_DAYS days, where late and replayed points land. Older days are left
    alone so that the rebuild stays short (on SQLite it holds the write lock while it runs).
    """
    now = now or utc_now()
    period = now.date().isoformat()
    with session_scope(engine) as session:
        if locks.has_period(session=session, job="metric_rollups", period=period):
            return False
    with session_scope(engine) as session:
        # The claim and the rebuild commit together: a second replica's claim fails, or waits
        # for this transaction and then fails.
        if not locks.claim_period(session=session, job="metric_rollups", period=period, now=now):
            return False
        metric_rollups.rebuild_rollups(session, first_day=(now - timedelta(days=ROLLUP_REPAIR_DAYS)).date())
    return True


@register_job
def rollup_job(settings: Settings) -> ScheduledJob | None:
    """Return the rollup repair job: checked hourly, rebuilt once a day."""
    return ScheduledJob(
        id="metric_rollups",
        function=run_rollup_refresh,
        interval_seconds=RETENTION_CHECK_SECONDS,
        first_delay_seconds=ROLLUP_FIRST_DELAY_SECONDS,
    )


register_job(alert_reactions.reminder_job)
register_job(stuck_runs.stuck_job)
register_job(digest.digest_job)


def run_locked(job: ScheduledJob, engine: Engine, settings: Settings) -> str:
    """Run `job` if this process gets its database lock; return `ok`, `failed` or `skipped`."""
    extra = {"job": job.id}
    lease = timedelta(seconds=settings.scheduler_lease_seconds)
    try:
        with locks.job_lock(engine, f"job:{job.id}", lease=lease) as acquired:
            if not acquired:
                logger.debug("scheduled job skipped: another process has its lock", extra=extra)
                outcome = "skipped"
            else:
                outcome = _run_held(job, engine, settings)
    except OperationalError as exc:
        logger.warning("scheduled job lock unavailable: %s", exc.orig, extra=extra)
        outcome = "failed"
    JOB_RUNS.labels(job=job.id, outcome=outcome).inc()
    return outcome


def _run_held(job: ScheduledJob, engine: Engine, settings: Settings) -> str:
    started = time.monotonic()
    try:
        job.function(engine, settings)
    except Exception:  # one failed run must not stop the schedule
        logger.exception("scheduled job failed", extra={"job": job.id})
        return "failed"
    finally:
        JOB_DURATION.labels(job=job.id).observe(time.monotonic() - started)
    return "ok"


class Scheduler:
    """The process's scheduler: every registered job on an interval, each run under its lock."""

    def __init__(self, engine: Engine, settings: Settings, *, factories: list[JobFactory] | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.jobs: dict[str, ScheduledJob] = {}
        for factory in JOB_FACTORIES if factories is None else factories:
            job = factory(settings)
            if job is not None:
                self.jobs[job.id] = job
        self._scheduler: AsyncIOScheduler | None = None

    @property
    def is_running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    def run(self, job_id: str) -> str:
        """Run one job now under its lock; the scheduler calls this with the job's id."""
        return run_locked(self.jobs[job_id], self.engine, self.settings)

    def start(self) -> None:
        """Start the scheduler in the running event loop (call it from the app's lifespan)."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        scheduler = AsyncIOScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS},
        )
        now = datetime.now(UTC)
        for job in self.jobs.values():
            scheduler.add_job(
                self.run,
                IntervalTrigger(seconds=job.interval_seconds, timezone=UTC),
                args=[job.id],
                id=job.id,
                name=job.id,
                replace_existing=True,
                next_run_time=now + timedelta(seconds=job.first_delay_seconds),
            )
        scheduler.start()
        self._scheduler = scheduler
        logger.info("scheduler started", extra={"jobs": sorted(self.jobs)})

    def stop(self) -> None:
        """Stop scheduling; a run in progress finishes in its thread and releases its lock."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            logger.info("scheduler stopped")
