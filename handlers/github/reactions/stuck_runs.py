"""Stuck runs: a scheduled check that alerts on run attempts queued or in progress for too long,
and the reaction that resolves those alerts when the runs complete.

A run attempt is stuck when it has waited longer than twice its workflow's p95 build time
over the last 30 days, and at least STUCK_MIN_MINUTES. Each stuck attempt is one failure of
the incident key `stuck` + repository + workflow + branch, so it goes through the same
routing, silences, posts and threads as a failed run. Its failure's source key
(`stuck:run:ID:ATTEMPT`) is unique, so a later check, or a second process, alerts on it no
more. The incident is resolved once every stuck attempt in it has completed.

Jobs left queued in an attempt that already completed can never start: the check closes
them instead of alerting.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import Session

from bot.config import Settings
from bot.render.slack import format_duration
from handlers.github.context import HandlerContext
from handlers.github.payload import optional_int, optional_object
from handlers.github.reactions.alert_routing import Facts, classify
from handlers.github.reactions.alerts import handle_failure, is_installation_disabled, live_posts
from storage import incidents, jobs, runs, stuck_runs
from storage.db import session_scope
from storage.models_alerts import AlertIncident

if TYPE_CHECKING:
    from bot.scheduler import ScheduledJob

logger = logging.getLogger(__name__)

STUCK_FIRST_DELAY_SECONDS = 150.0
# The limit is this many times the workflow's p95 build time.
P95_FACTOR = 2.0
P95_WINDOW_DAYS = 30


def stuck_limit(
    session: Session, settings: Settings, repo: str, workflow: str, now: datetime
) -> timedelta:
    """Return how long a run of a workflow may wait before it counts as stuck."""
    floor = settings.stuck_min_minutes * 60
    p95 = stuck_runs.workflow_p95(
        session=session, repo=repo, workflow=workflow, now=now, days=P95_WINDOW_DAYS
    )
    return timedelta(seconds=max(floor, P95_FACTOR * p95 if p95 is not None else 0.0))


def describe_limit(waited: timedelta, limit: timedelta) -> str:
    """Return the raw text that explains why a run counts as stuck."""
    return (
        f"Queued or in progress for {format_duration(waited.total_seconds())}, longer than the "
        f"limit of {format_duration(limit.total_seconds())} (twice the workflow's p95 build time "
        f"over {P95_WINDOW_DAYS} days, and at least STUCK_MIN_MINUTES)."
    )


def check_stuck_runs(
    engine: Engine, settings: Settings, *, now: datetime | None = None
) -> dict[str, int]:
    """Close leftover jobs, alert on newly stuck runs and resolve finished ones; return the counts."""
    now = now or incidents.now()
    counts = {"closed_jobs": 0, "alerted": 0, "resolved": 0}
    with session_scope(engine) as session:
        for run_id, attempt, conclusion in stuck_runs.list_attempts_with_unstarted_jobs(
            session=session
        ):
            closed = jobs.close_unstarted_jobs(
                session=session, run_id=run_id, attempt=attempt, conclusion=conclusion
            )
            counts["closed_jobs"] += closed
            logger.info(
                "unstarted jobs closed",
                extra={"run_id": run_id, "attempt": attempt, "jobs": closed},
            )

    floor = timedelta(minutes=settings.stuck_min_minutes)
    with session_scope(engine) as session:
        candidates = stuck_runs.list_unfinished_runs(session=session, started_before=now - floor)
        limits: dict[tuple[str, str], timedelta] = {}
        for run in candidates:
            if incidents.find_failure(
                session=session, source_key=stuck_runs.stuck_source_key(run.run_id, run.attempt)
            ):
                continue
            workflow_key = (run.repo, run.workflow)
            if workflow_key not in limits:
                limits[workflow_key] = stuck_limit(session, settings, run.repo, run.workflow, now)
            waited = max(timedelta(0), now - run.since)
            if waited <= limits[workflow_key]:
                continue
            counts["alerted"] += alert_stuck_run(
                session, settings, run, waited, limits[workflow_key], now
            )

    with session_scope(engine) as session:
        for incident in stuck_runs.list_open_stuck_incidents(session=session):
            if (
                stuck_runs.count_unfinished_stuck_runs(
                    session=session, incident_id=incident.id or 0
                )
                == 0
            ):
                resolve_stuck_incident(session, incident, run_id=None, attempt=None, at=now)
                counts["resolved"] += 1
    if any(counts.values()):
        logger.info("stuck runs checked", extra=counts)
    return counts


def alert_stuck_run(
    session: Session,
    settings: Settings,
    run: stuck_runs.UnfinishedRun,
    waited: timedelta,
    limit: timedelta,
    now: datetime,
) -> int:
    """Record a stuck run attempt as a failure of its stuck incident; return 1 if it was recorded."""
    extra = {"repo": run.repo, "run_id": run.run_id, "attempt": run.attempt}
    if is_installation_disabled(session, run.installation_id):
        logger.info("no stuck alert: installation disabled", extra=extra)
        return 0
    facts = Facts(
        kind=stuck_runs.STUCK_KIND,
        source_key=stuck_runs.stuck_source_key(run.run_id, run.attempt),
        repo=run.repo,
        workflow=run.workflow,
        branch=run.branch,
        conclusion=stuck_runs.STUCK_KIND,
        occurred_at=now,
        installation_id=run.installation_id,
        started_at=run.since,
        head_sha=run.head_sha,
        run_id=run.run_id,
        attempt=run.attempt,
        actor=run.actor,
        details={"description": describe_limit(waited, limit)},
    )
    classify(session, settings, facts, event=run.event)
    # The check is the delivery here: the context carries its ids into handle_failure's logs.
    ctx = HandlerContext(
        session=session,
        settings=settings,
        delivery_id="stuck-check",
        event="stuck_check",
        action=None,
    )
    handle_failure(ctx, facts)
    recorded = incidents.find_failure(session=session, source_key=facts.source_key) is not None
    if recorded:
        logger.info("stuck run recorded", extra={**extra, "waited_s": waited.total_seconds()})
    return int(recorded)


def resolve_stuck_incident(
    session: Session,
    incident: AlertIncident,
    *,
    run_id: int | None,
    attempt: int | None,
    at: datetime,
) -> None:
    """Resolve a stuck incident, edit its root messages and reply in their threads."""
    incidents.resolve_incident(
        session=session,
        incident=incident,
        run_id=run_id,
        attempt=attempt,
        resolved_at=max(at, incident.opened_at),
    )
    for post in live_posts(session, incident.id or 0):
        incidents.queue_post_message(
            session=session, post=post, action=incidents.UPDATE, key="resolved-edit"
        )
        incidents.queue_post_message(
            session=session, post=post, action=incidents.REPLY, key="resolved", note="resolved"
        )
    logger.info("stuck incident resolved", extra={"incident_id": incident.id, "run_id": run_id})


def wants(ctx: HandlerContext) -> bool:
    """Tell whether `react` can do anything for this delivery: a completed workflow run."""
    return ctx.event == "workflow_run" and ctx.action == "completed"


def react(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Resolve the stuck incident of a run whose attempt just completed, once none of its runs is left."""
    if not wants(ctx):
        return
    run_payload = optional_object(payload, "workflow_run")
    run_id = optional_int(run_payload, "id")
    number = optional_int(run_payload, "run_attempt") or 1
    if run_id is None:
        return
    failure = incidents.find_failure(
        session=ctx.session, source_key=stuck_runs.stuck_source_key(run_id, number)
    )
    if failure is None or failure.incident_id is None:
        return
    incident = incidents.get_incident(session=ctx.session, incident_id=failure.incident_id)
    if incident is None or incident.open_key is None:
        return
    if stuck_runs.count_unfinished_stuck_runs(session=ctx.session, incident_id=incident.id or 0):
        return
    attempt = runs.get_attempt(session=ctx.session, run_id=run_id, attempt=number)
    completed_at = (
        attempt.completed_at if attempt is not None and attempt.completed_at else incidents.now()
    )
    resolve_stuck_incident(ctx.session, incident, run_id=run_id, attempt=number, at=completed_at)


def run_stuck_check(engine: Engine, settings: Settings) -> None:
    """Scheduled job: check for stuck runs."""
    check_stuck_runs(engine, settings)


def stuck_job(settings: Settings) -> ScheduledJob:
    """Return the stuck-run check, every STUCK_CHECK_MINUTES (5 by default)."""
    # Imported here because bot.scheduler imports this module to register the job.
    from bot.scheduler import ScheduledJob

    return ScheduledJob(
        id="stuck_runs",
        function=run_stuck_check,
        interval_seconds=settings.stuck_check_minutes * 60,
        first_delay_seconds=STUCK_FIRST_DELAY_SECONDS,
    )
