"""Read and write functions for what shapes alerting: silences, routing rules, GitHub-to-Slack
user mappings and paused subscriptions."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlmodel import Session

from storage.models_alerts import AlertRoute, AlertSilence, AlertSubscriptionPause, AlertUserMapping
from storage.models_slack import SlackSubscription
from storage.types import utc_now


def split_globs(text: str) -> list[str]:
    """Split a comma-separated list of glob patterns."""
    return [part.strip() for part in text.split(",") if part.strip()]


def matches_glob(value: str | None, pattern: str) -> bool:
    """Tell whether a value matches one glob pattern, ignoring case."""
    return fnmatch.fnmatchcase((value or "").lower(), pattern.lower())


def matches_any_glob(value: str | None, patterns: Iterable[str]) -> bool:
    """Tell whether a value matches one of the glob patterns, ignoring case."""
    return any(matches_glob(value, pattern) for pattern in patterns)


# --- silences -------------------------------------------------------------------------------


def add_silence(
    *,
    session: Session,
    team_id: str,
    repo: str,
    workflow: str,
    branch: str,
    created_by: str | None,
    created_at: datetime,
    expires_at: datetime,
) -> AlertSilence:
    """Store a silence and return it with its id."""
    silence = AlertSilence(
        team_id=team_id,
        repo=repo,
        workflow=workflow,
        branch=branch,
        created_by=created_by,
        created_at=created_at,
        expires_at=expires_at,
    )
    session.add(silence)
    session.flush()
    return silence


def is_silence_active(silence: AlertSilence, at: datetime) -> bool:
    """Tell whether a silence is active at a time."""
    return silence.ended_at is None and silence.created_at <= at < silence.expires_at


def silence_covers(silence: AlertSilence, *, repo: str, workflow: str, branch: str) -> bool:
    """Tell whether a silence's repository, workflow and branch match a failure's."""
    if silence.repo != repo:
        return False
    if silence.workflow and not matches_glob(workflow, silence.workflow):
        return False
    return not silence.branch or matches_glob(branch, silence.branch)


def find_active_silence(
    *, session: Session, team_id: str, repo: str, workflow: str, branch: str, at: datetime
) -> AlertSilence | None:
    """Return the active silence of a workspace that covers a failure, if any."""
    candidates = session.scalars(
        select(AlertSilence)
        .where(
            AlertSilence.team_id == team_id,
            AlertSilence.repo == repo,
            AlertSilence.ended_at.is_(None),  # type: ignore[union-attr]
            AlertSilence.expires_at > at,
        )
        .order_by(AlertSilence.id)
    ).all()
    for silence in candidates:
        if is_silence_active(silence, at) and silence_covers(
            silence, repo=repo, workflow=workflow, branch=branch
        ):
            return silence
    return None


def note_suppressed(
    *, session: Session, silence: AlertSilence, run_id: int | None, at: datetime
) -> None:
    """Count a failure a silence held back."""
    silence.suppressed_count += 1
    silence.last_suppressed_at = at
    silence.last_suppressed_run_id = run_id
    session.add(silence)


def list_silences(*, session: Session, team_id: str, since: datetime) -> Sequence[AlertSilence]:
    """Return a workspace's silences that are active or ended after `since`, newest first."""
    return session.scalars(
        select(AlertSilence)
        .where(
            AlertSilence.team_id == team_id,
            or_(AlertSilence.expires_at >= since, AlertSilence.ended_at >= since),  # type: ignore[operator]
        )
        .order_by(AlertSilence.id.desc())  # type: ignore[union-attr]
    ).all()


def get_silence(*, session: Session, silence_id: int) -> AlertSilence | None:
    """Return one silence."""
    return session.get(AlertSilence, silence_id)


def end_silence(
    *, session: Session, silence: AlertSilence, ended_by: str | None, at: datetime
) -> None:
    """End a silence before it expires."""
    silence.ended_at = at
    silence.ended_by = ended_by
    session.add(silence)


# --- routing rules --------------------------------------------------------------------------


def add_route(*, session: Session, route: AlertRoute) -> AlertRoute:
    """Store a routing rule and return it with its id."""
    session.add(route)
    session.flush()
    return route


def list_routes(*, session: Session, team_id: str | None = None) -> Sequence[AlertRoute]:
    """Return the routing rules, of one workspace or all, oldest first."""
    statement = select(AlertRoute)
    if team_id is not None:
        statement = statement.where(AlertRoute.team_id == team_id)
    return session.scalars(statement.order_by(AlertRoute.id)).all()


def remove_route(*, session: Session, route_id: int) -> bool:
    """Delete a routing rule; return whether it existed."""
    route = session.get(AlertRoute, route_id)
    if route is None:
        return False
    session.delete(route)
    return True


def pause_route(*, session: Session, route_id: int, reason: str) -> None:
    """Stop a routing rule from getting alerts, recording why."""
    route = session.get(AlertRoute, route_id)
    if route is not None and route.paused_reason is None:
        route.paused_reason = reason[:500]
        session.add(route)


# --- user mappings --------------------------------------------------------------------------


def set_login_mapping(
    *, session: Session, team_id: str, github_login: str, slack_user_id: str, source: str = "config"
) -> None:
    """Map a GitHub login to a Slack user in one workspace."""
    login = github_login.lower()
    row = session.scalars(
        select(AlertUserMapping).where(
            AlertUserMapping.team_id == team_id, AlertUserMapping.github_login == login
        )
    ).first()
    if row is None:
        row = AlertUserMapping(team_id=team_id, github_login=login)
    row.slack_user_id = slack_user_id
    row.source = source
    row.updated_at = utc_now()
    session.add(row)


def find_login_mapping(*, session: Session, team_id: str, github_login: str) -> str | None:
    """Return the Slack user mapped to a GitHub login in a workspace, if any."""
    return session.scalars(
        select(AlertUserMapping.slack_user_id).where(
            AlertUserMapping.team_id == team_id,
            AlertUserMapping.github_login == github_login.lower(),
        )
    ).first()


def find_email_lookup(*, session: Session, team_id: str, email: str) -> AlertUserMapping | None:
    """Return the stored result of looking up an email in a workspace, if it was looked up."""
    return session.scalars(
        select(AlertUserMapping).where(
            AlertUserMapping.team_id == team_id, AlertUserMapping.email == email.lower()
        )
    ).first()


def store_email_lookup(
    *, session: Session, team_id: str, email: str, slack_user_id: str | None
) -> None:
    """Store what users.lookupByEmail returned for an email; None when no user has it."""
    row = find_email_lookup(session=session, team_id=team_id, email=email)
    if row is None:
        row = AlertUserMapping(team_id=team_id, email=email.lower(), source="lookup")
    row.slack_user_id = slack_user_id
    row.updated_at = utc_now()
    session.add(row)


# --- paused subscriptions -------------------------------------------------------------------


def pause_subscription(*, session: Session, subscription_id: int, reason: str, detail: str) -> bool:
    """Stop a subscription from getting alerts; return False if it was already paused."""
    if session.get(AlertSubscriptionPause, subscription_id) is not None:
        return False
    session.add(
        AlertSubscriptionPause(
            subscription_id=subscription_id, reason=reason[:100], detail=detail[:500]
        )
    )
    return True


def resume_subscription(*, session: Session, subscription_id: int) -> bool:
    """Let a paused subscription get alerts again; return whether it was paused."""
    row = session.get(AlertSubscriptionPause, subscription_id)
    if row is None:
        return False
    session.delete(row)
    return True


def paused_subscriptions(
    *, session: Session, subscription_ids: Iterable[int]
) -> dict[int, AlertSubscriptionPause]:
    """Return the pauses of the given subscriptions, by subscription id."""
    ids = sorted(set(subscription_ids))
    if not ids:
        return {}
    rows = session.scalars(
        select(AlertSubscriptionPause).where(AlertSubscriptionPause.subscription_id.in_(ids))  # type: ignore[attr-defined]
    ).all()
    return {row.subscription_id: row for row in rows}


def pause_team_subscriptions(*, session: Session, team_id: str, reason: str, detail: str) -> int:
    """Pause every subscription of a workspace (its bot token stopped working); return how many."""
    ids = session.scalars(
        select(SlackSubscription.id).where(SlackSubscription.team_id == team_id)
    ).all()
    return sum(
        pause_subscription(session=session, subscription_id=int(i), reason=reason, detail=detail)
        for i in ids
    )


def pause_installation_subscriptions(
    *, session: Session, installation_id: int, reason: str, detail: str
) -> int:
    """Pause every subscription to the repositories of a GitHub installation; return how many."""
    ids = session.scalars(
        select(SlackSubscription.id).where(SlackSubscription.installation_id == installation_id)
    ).all()
    return sum(
        pause_subscription(session=session, subscription_id=int(i), reason=reason, detail=detail)
        for i in ids
    )


def resume_installation_subscriptions(
    *, session: Session, installation_id: int, reason: str
) -> int:
    """Resume the subscriptions of an installation that were paused for `reason`; return how many."""
    ids = session.scalars(
        select(SlackSubscription.id).where(SlackSubscription.installation_id == installation_id)
    ).all()
    rows = paused_subscriptions(session=session, subscription_ids=[int(i) for i in ids])
    resumed = 0
    for row in rows.values():
        if row.reason == reason:
            session.delete(row)
            resumed += 1
    return resumed


def pause_note(pause: AlertSubscriptionPause) -> str:
    """Say why a subscription's alerts are paused and how they resume, for `/release subscriptions`."""
    if pause.reason == "installation_suspended":
        return f"{pause.detail}; alerts resume when the installation is unsuspended"
    if pause.reason == "installation_deleted":
        return f"{pause.detail}; install the App again, then run /release subscribe again to resume"
    return f"{pause.detail}; fix it, then run /release subscribe again to resume"
