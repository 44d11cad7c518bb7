"""Read and write functions for incidents, their failures and their Slack posts.

The alert reaction calls these inside the webhook worker's transaction, so an incident change
and the outbox rows it queues commit together. `now` is the one clock of alerting; tests
replace it to move time forward.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage import outbox
from storage.models_alerts import (
    INCIDENT_OPEN,
    INCIDENT_RESOLVED,
    AlertFailure,
    AlertIncident,
    AlertPost,
)
from storage.outbox import OutboxMessage, OutboxStatus
from storage.types import utc_now

# The fields an incident key may be built from; `repo` is always one of them.
KEY_FIELDS = ("repo", "workflow", "branch")


def now() -> datetime:
    """Return the current UTC time; tests replace this function to move alerting's clock."""
    return utc_now()


def incident_key(*, kind: str, repo: str, workflow: str, branch: str, fields: Sequence[str]) -> str:
    """Build the key that groups failures into one incident; fields left out match anything."""
    values = {"repo": repo, "workflow": workflow, "branch": branch}
    parts = [kind] + [values[name] if name in fields else "*" for name in KEY_FIELDS]
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def find_failure(*, session: Session, source_key: str) -> AlertFailure | None:
    """Return the failure recorded for a run attempt or deployment status, if any."""
    return session.scalars(
        select(AlertFailure).where(AlertFailure.source_key == source_key)
    ).first()


def record_failure(*, session: Session, failure: AlertFailure) -> AlertFailure:
    """Store a new failure and return it with its id."""
    session.add(failure)
    session.flush()
    return failure


def find_open_incident(*, session: Session, key: str) -> AlertIncident | None:
    """Return the open incident of a key, locking its row so a concurrent change waits."""
    return session.scalars(
        select(AlertIncident).where(AlertIncident.open_key == key).with_for_update()
    ).first()


def get_incident(*, session: Session, incident_id: int) -> AlertIncident | None:
    """Return one incident."""
    return session.get(AlertIncident, incident_id)


def open_incident(*, session: Session, incident: AlertIncident) -> tuple[AlertIncident, bool]:
    """Store a new open incident and return it with True, or return the one another process
    opened first with False.

    Two replicas may handle failures of one key at once. The unique open key lets one insert
    win, and the other process attaches its failure to that incident.
    """
    incident.open_key = incident.incident_key
    savepoint = session.begin_nested()
    try:
        session.add(incident)
        session.flush()
        savepoint.commit()
        return incident, True
    except IntegrityError:
        savepoint.rollback()
    existing = find_open_incident(session=session, key=incident.incident_key)
    if existing is None:
        raise LookupError(
            f"incident key {incident.incident_key!r} collided, but no open incident has it"
        )
    return existing, False


def attach_failure(
    *, session: Session, incident: AlertIncident, failure: AlertFailure, counted: bool
) -> None:
    """Link a failure to an incident; `counted` failures raise its count and last failure time."""
    failure.incident_id = incident.id
    session.add(failure)
    if counted:
        incident.failure_count += 1
        if incident.last_failure_at is None or failure.occurred_at >= incident.last_failure_at:
            incident.last_failure_at = failure.occurred_at
    started = failure.started_at or failure.occurred_at
    if incident.last_failure_started_at is None or started > incident.last_failure_started_at:
        incident.last_failure_started_at = started
    incident.updated_at = utc_now()
    session.add(incident)


def resolve_incident(
    *,
    session: Session,
    incident: AlertIncident,
    run_id: int | None,
    attempt: int | None,
    resolved_at: datetime,
) -> None:
    """Close an incident; the time to recover runs from its first failure to `resolved_at`."""
    incident.status = INCIDENT_RESOLVED
    incident.open_key = None
    incident.resolved_at = resolved_at
    incident.resolved_run_id = run_id
    incident.resolved_attempt = attempt
    incident.recovery_s = max(0.0, (resolved_at - incident.opened_at).total_seconds())
    incident.updated_at = utc_now()
    session.add(incident)


def latest_resolved_incident(*, session: Session, key: str) -> AlertIncident | None:
    """Return the most recently resolved incident of a key."""
    return session.scalars(
        select(AlertIncident)
        .where(AlertIncident.incident_key == key, AlertIncident.status == INCIDENT_RESOLVED)
        .order_by(AlertIncident.resolved_at.desc(), AlertIncident.id.desc())  # type: ignore[union-attr]
    ).first()


def list_incident_failures(*, session: Session, incident_id: int) -> Sequence[AlertFailure]:
    """Return an incident's failures, oldest first."""
    return session.scalars(
        select(AlertFailure)
        .where(AlertFailure.incident_id == incident_id)
        .order_by(AlertFailure.occurred_at, AlertFailure.id)
    ).all()


def get_failure(*, session: Session, failure_id: int) -> AlertFailure | None:
    """Return one failure."""
    return session.get(AlertFailure, failure_id)


def mark_flaky(
    *,
    session: Session,
    repo: str,
    workflow: str,
    head_sha: str,
    passed_run_id: int,
    passed_attempt: int,
    at: datetime,
) -> list[AlertFailure]:
    """Mark the failures of a workflow on a commit flaky because a later run of it passed; return them."""
    failures = session.scalars(
        select(AlertFailure).where(
            AlertFailure.repo == repo,
            AlertFailure.workflow == workflow,
            AlertFailure.head_sha == head_sha,
            AlertFailure.flaky.is_(False),  # type: ignore[attr-defined]
            AlertFailure.run_id.is_not(None),  # type: ignore[union-attr]
        )
    ).all()
    marked = []
    for failure in failures:
        same_run_earlier = (
            failure.run_id == passed_run_id and (failure.run_attempt or 0) < passed_attempt
        )
        if failure.run_id != passed_run_id or same_run_earlier:
            failure.flaky = True
            failure.flaky_run_id = passed_run_id
            failure.flaky_attempt = passed_attempt
            failure.flaky_marked_at = at
            session.add(failure)
            marked.append(failure)
    return marked


def count_flaky_failures(
    *,
    session: Session,
    repo: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    workflow: str | None = None,
    branch: str | None = None,
) -> int:
    """Count failures later marked flaky that occurred in a window, filtered by repository, workflow and branch."""
    statement = select(func.count(AlertFailure.id)).where(AlertFailure.flaky.is_(True))  # type: ignore[attr-defined]
    if repo is not None:
        statement = statement.where(AlertFailure.repo == repo)
    if workflow is not None:
        statement = statement.where(AlertFailure.workflow == workflow)
    if branch is not None:
        statement = statement.where(AlertFailure.branch == branch)
    if since is not None:
        statement = statement.where(AlertFailure.occurred_at >= since)
    if until is not None:
        statement = statement.where(AlertFailure.occurred_at < until)
    return int(session.scalar(statement) or 0)


# --- posts ----------------------------------------------------------------------------------


def find_post(
    *, session: Session, incident_id: int, team_id: str, channel_id: str
) -> AlertPost | None:
    """Return the post of an incident in one channel, if any."""
    return session.scalars(
        select(AlertPost).where(
            AlertPost.incident_id == incident_id,
            AlertPost.team_id == team_id,
            AlertPost.channel_id == channel_id,
        )
    ).first()


def add_post(
    *,
    session: Session,
    incident_id: int,
    team_id: str,
    channel_id: str,
    subscription_id: int | None = None,
    route_id: int | None = None,
) -> tuple[AlertPost, bool]:
    """Store the (not yet sent) root message of an incident in a channel and return it with True,
    or return the post another process stored first with False."""
    post = AlertPost(
        incident_id=incident_id,
        team_id=team_id,
        channel_id=channel_id,
        subscription_id=subscription_id,
        route_id=route_id,
    )
    savepoint = session.begin_nested()
    try:
        session.add(post)
        session.flush()
        savepoint.commit()
        return post, True
    except IntegrityError:
        savepoint.rollback()
    existing = find_post(
        session=session, incident_id=incident_id, team_id=team_id, channel_id=channel_id
    )
    if existing is None:
        raise LookupError(
            f"the post of incident {incident_id} in {channel_id} collided, but none is stored"
        )
    return existing, False


def get_post(*, session: Session, post_id: int) -> AlertPost | None:
    """Return one post."""
    return session.get(AlertPost, post_id)


def list_posts(*, session: Session, incident_id: int) -> Sequence[AlertPost]:
    """Return the posts of an incident, one per channel."""
    return session.scalars(
        select(AlertPost).where(AlertPost.incident_id == incident_id).order_by(AlertPost.id)
    ).all()


def record_post_ts(*, session: Session, post_id: int, ts: str, channel: str) -> None:
    """Store the `ts` and channel id Slack returned for a root message, exactly as returned."""
    session.execute(
        update(AlertPost)
        .where(AlertPost.id == post_id)
        .values(ts=ts, posted_channel=channel, last_error=None, updated_at=utc_now())
    )


def record_post_error(*, session: Session, post_id: int, error: str) -> None:
    """Note why a message of a post could not be sent."""
    session.execute(
        update(AlertPost)
        .where(AlertPost.id == post_id)
        .values(last_error=error[:500], updated_at=utc_now())
    )


def list_incidents_due_reminder(
    *, session: Session, before: datetime, limit: int = 200
) -> list[AlertIncident]:
    """Return open incidents whose latest failure and latest reminder are both older than `before`.

    A failure replies in the thread anyway, so the reminder interval restarts with each one.
    """
    candidates = session.scalars(
        select(AlertIncident)
        .where(AlertIncident.status == INCIDENT_OPEN, AlertIncident.opened_at <= before)
        .order_by(AlertIncident.id)
        .with_for_update(skip_locked=True)
    ).all()
    due = []
    for incident in candidates:
        times = [incident.opened_at, incident.last_failure_at, incident.last_reminded_at]
        if max(time for time in times if time is not None) <= before:
            due.append(incident)
    return due[:limit]


def note_reminder(*, session: Session, incident: AlertIncident, at: datetime) -> int:
    """Count a reminder of an incident; return its number (1 for the first)."""
    incident.reminder_count += 1
    incident.last_reminded_at = at
    session.add(incident)
    return incident.reminder_count


def list_open_incidents(*, session: Session, repo: str | None = None) -> Sequence[AlertIncident]:
    """Return the open incidents, of one repository or all, oldest first."""
    statement = select(AlertIncident).where(AlertIncident.status == INCIDENT_OPEN)
    if repo is not None:
        statement = statement.where(AlertIncident.repo == repo)
    return session.scalars(statement.order_by(AlertIncident.opened_at, AlertIncident.id)).all()


# --- outbox messages of posts ---------------------------------------------------------------

# Outbox kind of every Slack message about an incident: root posts, edits and thread replies.
SLACK_ALERT_KIND = "slack_alert"
# Outbox kind of a "Re-run failed jobs" request to GitHub.
RERUN_KIND = "github_rerun_failed_jobs"
OPEN = "open"
REPLY = "reply"
UPDATE = "update"


def post_target(post: AlertPost) -> str:
    """Return the outbox target of a post's messages: its workspace and channel, throttled together."""
    return f"{post.team_id}/{post.channel_id}"


def open_message_key(post_id: int) -> str:
    """Return the dedupe key of a post's root message, whose outbox result contains its `ts`."""
    return f"{SLACK_ALERT_KIND}:{post_id}:open"


def queue_post_message(
    *,
    session: Session,
    post: AlertPost,
    action: str,
    key: str,
    note: str | None = None,
    **fields: Any,
) -> OutboxMessage:
    """Queue a root post, an edit of it or a thread reply; `key` makes a second call a no-op.

    Call it in the transaction that changed the incident, so both commit or neither does.
    """
    dedupe_key = (
        open_message_key(post.id or 0) if action == OPEN else f"{SLACK_ALERT_KIND}:{post.id}:{key}"
    )
    payload: dict[str, Any] = {"post_id": post.id, "action": action, "note": note, **fields}
    return outbox.enqueue(
        session=session,
        kind=SLACK_ALERT_KIND,
        target=post_target(post),
        payload=payload,
        dedupe_key=dedupe_key,
    )


def root_message(*, session: Session, post_id: int) -> OutboxMessage | None:
    """Return the outbox row of a post's root message."""
    return session.scalars(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == open_message_key(post_id))
    ).first()


def is_post_dead(*, session: Session, post: AlertPost) -> bool:
    """Tell whether Slack rejected a post's root message for good, so its thread cannot exist."""
    if post.ts is not None:
        return False
    root = root_message(session=session, post_id=post.id or 0)
    return root is not None and root.status == OutboxStatus.FAILED.value
