"""Reaction to completed runs, deployment statuses and installation changes: open, extend and
resolve incidents, and queue their Slack messages in the same transaction.

The first failure of an incident key posts one root message per channel, and later failures
reply in its thread. A passing run resolves the incident, edits the root message and replies
in the thread. A failure held back by a silence is recorded and counted, not
posted. Nothing here calls Slack or GitHub: every message is an outbox row.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from bot.alert_settings import incident_key_fields, repeat_interval
from bot.config import Settings
from handlers.github.context import HandlerContext
from handlers.github.payload import (
    login_of,
    optional_int,
    optional_object,
    optional_str,
    parse_time,
)
from handlers.github.reactions.alert_routing import (
    CANCELLED,
    FAILING_CONCLUSIONS,
    SEVERITY_RANK,
    Destination,
    Facts,
    classify,
    route,
)
from storage import alert_rules, incidents, queries, runs
from storage.db import session_scope
from storage.github_app import DISABLED_INSTALLATION_STATUSES
from storage.models import Deployment, Installation, Repository
from storage.models_alerts import AlertFailure, AlertIncident, AlertPost, AlertSilence
from storage.models_slack import SlackSubscription

if TYPE_CHECKING:
    from bot.scheduler import ScheduledJob

logger = logging.getLogger(__name__)

FAILED_DEPLOYMENT_STATES = frozenset({"failure", "error"})
REMINDER_CHECK_SECONDS = 300.0
REMINDER_FIRST_DELAY_SECONDS = 120.0
PAUSE_REASONS = {"deleted": "installation_deleted", "suspend": "installation_suspended"}
RESUME_ACTIONS = frozenset({"created", "unsuspend", "new_permissions_accepted"})


def wants(ctx: HandlerContext) -> bool:
    """Tell whether `react` handles this delivery's event."""
    return (ctx.event, ctx.action) == ("workflow_run", "completed") or ctx.event in (
        "deployment_status",
        "installation",
    )


def react(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Dispatch a processed delivery to the alert reaction for its event."""
    if ctx.event == "workflow_run" and ctx.action == "completed":
        on_run_completed(ctx, payload)
    elif ctx.event == "deployment_status":
        on_deployment_status(ctx, payload)
    elif ctx.event == "installation":
        on_installation(ctx, payload)


def is_installation_disabled(session: Session, installation_id: int | None) -> bool:
    """Tell whether GitHub reported the installation deleted or suspended, so its runs send no alert."""
    if installation_id is None:
        return False
    installation = session.get(Installation, installation_id)
    return installation is not None and installation.status in DISABLED_INSTALLATION_STATUSES


def on_run_completed(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Record a completed attempt's failure or success for alerting."""
    run_payload = optional_object(payload, "workflow_run")
    run_id = optional_int(run_payload, "id")
    number = optional_int(run_payload, "run_attempt") or 1
    run = queries.get_run(session=ctx.session, run_id=run_id) if run_id is not None else None
    attempt = (
        runs.get_attempt(session=ctx.session, run_id=run_id, attempt=number)
        if run_id is not None
        else None
    )
    if run is None or attempt is None or attempt.status != "completed" or not run.repo:
        return
    if is_installation_disabled(ctx.session, run.installation_id):
        logger.info(
            "no alert: installation disabled",
            extra=ctx.log_extra(run_id=run.id, installation_id=run.installation_id),
        )
        return

    author = optional_object(optional_object(run_payload, "head_commit"), "author")
    facts = Facts(
        kind="workflow_run",
        source_key=f"run:{run.id}:{attempt.attempt}",
        repo=run.repo,
        workflow=run.workflow_name or "",
        branch=run.head_branch or "",
        conclusion=attempt.conclusion or "",
        occurred_at=attempt.completed_at or incidents.now(),
        installation_id=run.installation_id,
        started_at=attempt.run_started_at,
        head_sha=run.head_sha,
        run_id=run.id,
        attempt=attempt.attempt,
        actor=attempt.triggering_actor or run.actor,
        author_email=optional_str(author, "email", max_length=320),
    )
    classify(ctx.session, ctx.settings, facts, event=run.event)
    if facts.conclusion in FAILING_CONCLUSIONS or facts.conclusion == CANCELLED:
        handle_failure(ctx, facts)
    elif facts.conclusion == "success":
        handle_success(ctx, facts)


def on_deployment_status(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Record a failed or successful deployment status for alerting."""
    status = optional_object(payload, "deployment_status")
    deployment_payload = optional_object(payload, "deployment")
    deployment_id = optional_int(deployment_payload, "id")
    state = optional_str(status, "state") or ""
    deployment = ctx.session.get(Deployment, deployment_id) if deployment_id is not None else None
    if deployment is None or not deployment.repo:
        return
    installation_id = optional_int(optional_object(payload, "installation"), "id")
    if is_installation_disabled(ctx.session, installation_id):
        return

    environment = deployment.environment or optional_str(status, "environment") or "an environment"
    status_id = optional_int(status, "id")
    facts = Facts(
        kind="deployment",
        source_key=f"deployment_status:{status_id}"
        if status_id is not None
        else f"deployment:{deployment.id}:{state}",
        repo=deployment.repo,
        workflow=f"deploy to {environment}",
        branch=deployment.ref or "",
        conclusion=state,
        occurred_at=parse_time(status.get("updated_at"))
        or parse_time(status.get("created_at"))
        or incidents.now(),
        installation_id=installation_id,
        started_at=deployment.created_at,
        head_sha=deployment.sha,
        deployment_id=deployment.id,
        environment=environment,
        actor=login_of(status, "creator") or deployment.creator,
        details={
            "description": optional_str(status, "description", max_length=1000),
            "log_url": optional_str(status, "log_url") or optional_str(status, "target_url"),
        },
    )
    classify(ctx.session, ctx.settings, facts)
    if state in FAILED_DEPLOYMENT_STATES:
        handle_failure(ctx, facts)
    elif state == "success":
        handle_success(ctx, facts)


def key_of(settings: Settings, facts: Facts) -> str:
    """Return the incident key of a failure or success."""
    return incidents.incident_key(
        kind=facts.kind,
        repo=facts.repo,
        workflow=facts.workflow,
        branch=facts.branch,
        fields=incident_key_fields(settings),
    )


def is_stale(session: Session, key: str, facts: Facts) -> bool:
    """Tell whether a failure is older than the run that resolved the key's last incident (a late delivery)."""
    resolved = incidents.latest_resolved_incident(session=session, key=key)
    if resolved is None or resolved.resolved_run_id is None or facts.started_at is None:
        return False
    resolver = runs.get_attempt(
        session=session, run_id=resolved.resolved_run_id, attempt=resolved.resolved_attempt or 1
    )
    return (
        resolver is not None
        and resolver.run_started_at is not None
        and facts.started_at < resolver.run_started_at
    )


def new_failure(facts: Facts) -> AlertFailure:
    """Build the failure row of a failure's facts."""
    return AlertFailure(
        source_key=facts.source_key,
        repo=facts.repo,
        workflow=facts.workflow,
        branch=facts.branch,
        run_id=facts.run_id,
        run_attempt=facts.attempt,
        deployment_id=facts.deployment_id,
        environment=facts.environment,
        head_sha=facts.head_sha,
        conclusion=facts.conclusion,
        severity=facts.severity,
        stage=facts.stage,
        started_at=facts.started_at,
        occurred_at=facts.occurred_at,
        actor=facts.actor,
        author_email=facts.author_email,
        details={
            key: value for key, value in {**facts.details, "is_tag": facts.is_tag}.items() if value
        },
    )


def handle_failure(ctx: HandlerContext, facts: Facts) -> None:
    """Record a failure; open an incident and post it, or reply in the open incident's threads."""
    session = ctx.session
    extra = ctx.log_extra(repo=facts.repo, run_id=facts.run_id, deployment_id=facts.deployment_id)
    if incidents.find_failure(session=session, source_key=facts.source_key) is not None:
        return
    destinations = route(session, ctx.settings, facts)
    if not destinations and not facts.is_release:
        return
    key = key_of(ctx.settings, facts)
    failure = incidents.record_failure(session=session, failure=new_failure(facts))
    if is_stale(session, key, facts):
        logger.info(
            "failure older than the run that resolved its incident; not posted", extra=extra
        )
        return

    now = incidents.now()
    active, silenced = split_silenced(session, destinations, facts, now)
    for silence in silenced.values():
        alert_rules.note_suppressed(session=session, silence=silence, run_id=facts.run_id, at=now)
    if destinations and not active:
        failure.silence_id = next(iter(silenced))
        session.add(failure)

    incident = incidents.find_open_incident(session=session, key=key)
    if incident is None:
        if destinations and not active:
            logger.info("failure silenced", extra={**extra, "silence_id": failure.silence_id})
            return
        incident, _ = incidents.open_incident(session=session, incident=new_incident(key, facts))
    incidents.attach_failure(session=session, incident=incident, failure=failure, counted=True)
    if SEVERITY_RANK.get(facts.severity, 1) > SEVERITY_RANK.get(incident.severity, 1):
        incident.severity = facts.severity

    posted = 0
    for destination in active:
        posted += queue_failure_message(session, incident, failure, destination)
    logger.info(
        "failure recorded",
        extra={
            **extra,
            "incident_id": incident.id,
            "messages": posted,
            "silenced": len(destinations) - len(active),
        },
    )


def new_incident(key: str, facts: Facts) -> AlertIncident:
    """Build an open incident whose first failure is `facts`."""
    return AlertIncident(
        incident_key=key,
        kind=facts.kind,
        repo=facts.repo,
        workflow=facts.workflow,
        branch=facts.branch,
        installation_id=facts.installation_id,
        severity=facts.severity,
        opened_at=facts.occurred_at,
    )


def split_silenced(
    session: Session, destinations: list[Destination], facts: Facts, now: datetime
) -> tuple[list[Destination], dict[int, AlertSilence]]:
    """Split destinations into those that get the failure and the silences that hold it back."""
    active: list[Destination] = []
    silenced: dict[int, AlertSilence] = {}
    for destination in destinations:
        silence = alert_rules.find_active_silence(
            session=session,
            team_id=destination.team_id,
            repo=facts.repo,
            workflow=facts.workflow,
            branch=facts.branch,
            at=now,
        )
        if silence is None:
            active.append(destination)
        else:
            silenced.setdefault(silence.id or 0, silence)
    return active, silenced


def queue_failure_message(
    session: Session, incident: AlertIncident, failure: AlertFailure, destination: Destination
) -> int:
    """Queue the root message in a channel new to the incident, or a thread reply; return 1 if queued."""
    post = incidents.find_post(
        session=session,
        incident_id=incident.id or 0,
        team_id=destination.team_id,
        channel_id=destination.channel_id,
    )
    if post is None:
        post, created = incidents.add_post(
            session=session,
            incident_id=incident.id or 0,
            team_id=destination.team_id,
            channel_id=destination.channel_id,
            subscription_id=destination.subscription_id,
            route_id=destination.route_id,
        )
        if created:
            incidents.queue_post_message(
                session=session, post=post, action=incidents.OPEN, key="open", failure_id=failure.id
            )
            return 1
    if incidents.is_post_dead(session=session, post=post):
        return 0
    incidents.queue_post_message(
        session=session,
        post=post,
        action=incidents.REPLY,
        key=f"failure:{failure.id}",
        note="failure",
        failure_id=failure.id,
        failure_number=incident.failure_count,
    )
    return 1


def handle_success(ctx: HandlerContext, facts: Facts) -> None:
    """Mark earlier failures of the same commit flaky, and resolve the open incident of the key."""
    session = ctx.session
    flaky: list[AlertFailure] = []
    if facts.head_sha and facts.run_id is not None:
        flaky = incidents.mark_flaky(
            session=session,
            repo=facts.repo,
            workflow=facts.workflow,
            head_sha=facts.head_sha,
            passed_run_id=facts.run_id,
            passed_attempt=facts.attempt or 1,
            at=facts.occurred_at,
        )
    key = key_of(ctx.settings, facts)
    incident = incidents.find_open_incident(session=session, key=key)
    resolving = incident is not None and not (
        facts.started_at is not None
        and incident.last_failure_started_at is not None
        and facts.started_at < incident.last_failure_started_at
    )
    if incident is not None and resolving:
        resolved_at = max(facts.occurred_at, incident.opened_at)
        incidents.resolve_incident(
            session=session,
            incident=incident,
            run_id=facts.run_id,
            attempt=facts.attempt,
            resolved_at=resolved_at,
        )
        for post in live_posts(session, incident.id or 0):
            incidents.queue_post_message(
                session=session, post=post, action=incidents.UPDATE, key="resolved-edit"
            )
            incidents.queue_post_message(
                session=session, post=post, action=incidents.REPLY, key="resolved", note="resolved"
            )
        logger.info(
            "incident resolved",
            extra=ctx.log_extra(repo=facts.repo, incident_id=incident.id, run_id=facts.run_id),
        )

    for failure in flaky:
        if failure.incident_id is None:
            continue
        for post in live_posts(session, failure.incident_id):
            incidents.queue_post_message(
                session=session,
                post=post,
                action=incidents.REPLY,
                key=f"flaky:{failure.id}",
                note="flaky",
                failure_id=failure.id,
            )
    if flaky:
        logger.info(
            "failures marked flaky",
            extra=ctx.log_extra(repo=facts.repo, run_id=facts.run_id, failures=len(flaky)),
        )


def live_posts(session: Session, incident_id: int) -> list[AlertPost]:
    """Return an incident's posts whose root message Slack did not reject."""
    return [
        post
        for post in incidents.list_posts(session=session, incident_id=incident_id)
        if not incidents.is_post_dead(session=session, post=post)
    ]


def on_installation(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Pause the subscriptions of an uninstalled or suspended installation; resume them when it is unsuspended."""
    installation = optional_object(payload, "installation")
    installation_id = optional_int(installation, "id")
    if installation_id is None:
        return
    account = (
        optional_str(optional_object(installation, "account"), "login")
        or f"installation {installation_id}"
    )
    reason = PAUSE_REASONS.get(ctx.action or "")
    if reason is not None:
        detail = (
            f"the GitHub App was uninstalled from {account}"
            if reason == "installation_deleted"
            else f"the GitHub App installation of {account} is suspended"
        )
        paused = alert_rules.pause_installation_subscriptions(
            session=ctx.session, installation_id=installation_id, reason=reason, detail=detail
        )
        paused += pause_by_repository(ctx.session, installation_id, reason, detail)
        logger.info(
            "subscriptions paused",
            extra=ctx.log_extra(installation_id=installation_id, paused=paused, reason=reason),
        )
    elif ctx.action in RESUME_ACTIONS:
        # GitHub gives a reinstalled App a new installation id, so only a suspension ends here;
        # after an uninstall, `/release subscribe` resumes the subscription.
        resumed = alert_rules.resume_installation_subscriptions(
            session=ctx.session, installation_id=installation_id, reason=PAUSE_REASONS["suspend"]
        )
        if resumed:
            logger.info(
                "subscriptions resumed",
                extra=ctx.log_extra(installation_id=installation_id, resumed=resumed),
            )


def pause_by_repository(session: Session, installation_id: int, reason: str, detail: str) -> int:
    """Pause subscriptions stored without an installation id whose repository belongs to the installation."""
    names = session.scalars(
        select(Repository.full_name).where(Repository.installation_id == installation_id)
    ).all()
    if not names:
        return 0
    ids = session.scalars(
        select(SlackSubscription.id).where(
            SlackSubscription.repo.in_(names),
            SlackSubscription.installation_id.is_(None),  # type: ignore[attr-defined,union-attr]
        )
    ).all()
    return sum(
        alert_rules.pause_subscription(
            session=session, subscription_id=int(i), reason=reason, detail=detail
        )
        for i in ids
    )


def queue_reminders(engine: Engine, settings: Settings, *, now: datetime | None = None) -> int:
    """Queue a thread reminder for each incident still failing after ALERT_REPEAT_HOURS; return how many.

    A silenced channel gets no reminder; the reminder is still counted, so it is not tried
    again before the next interval.
    """
    interval = repeat_interval(settings)
    if interval is None:
        return 0
    now = now or incidents.now()
    queued = 0
    with session_scope(engine) as session:
        for incident in incidents.list_incidents_due_reminder(
            session=session, before=now - interval
        ):
            failures = incidents.list_incident_failures(
                session=session, incident_id=incident.id or 0
            )
            number = incidents.note_reminder(session=session, incident=incident, at=now)
            for post in live_posts(session, incident.id or 0):
                silence = alert_rules.find_active_silence(
                    session=session,
                    team_id=post.team_id,
                    repo=incident.repo,
                    workflow=incident.workflow,
                    branch=incident.branch,
                    at=now,
                )
                if silence is not None:
                    continue
                incidents.queue_post_message(
                    session=session,
                    post=post,
                    action=incidents.REPLY,
                    key=f"reminder:{number}",
                    note="reminder",
                    failure_id=failures[-1].id if failures else None,
                    at=now.isoformat(),
                )
                queued += 1
    if queued:
        logger.info("incident reminders queued", extra={"messages": queued})
    return queued


def run_reminders(engine: Engine, settings: Settings) -> None:
    """Scheduled job: queue the reminders that are due."""
    queue_reminders(engine, settings)


def reminder_job(settings: Settings) -> ScheduledJob | None:
    """Return the reminder job, which checks every 5 minutes, or None when ALERT_REPEAT_HOURS is 0."""
    # Imported here because bot.scheduler imports this module to register the job.
    from bot.scheduler import ScheduledJob

    if repeat_interval(settings) is None:
        return None
    return ScheduledJob(
        id="alert_reminders",
        function=run_reminders,
        interval_seconds=REMINDER_CHECK_SECONDS,
        first_delay_seconds=REMINDER_FIRST_DELAY_SECONDS,
    )
