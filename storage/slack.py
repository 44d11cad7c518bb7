"""Read and write functions for the Slack tables: links, subscriptions and live status messages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlmodel import Session

from storage import outbox
from storage.models import Installation, Repository
from storage.models_slack import SlackLink, SlackStatusMessage, SlackSubscription
from storage.outbox import OutboxMessage, OutboxStatus
from storage.types import utc_now


def linked_installation_ids(*, session: Session, team_id: str) -> set[int]:
    """Return the GitHub installations whose repositories a Slack workspace may see."""
    rows = session.scalars(select(SlackLink.installation_id).where(SlackLink.team_id == team_id))
    return set(rows.all())


def teams_linked_to(*, session: Session, installation_id: int) -> set[str]:
    """Return the Slack workspaces linked to a GitHub installation."""
    rows = session.scalars(
        select(SlackLink.team_id).where(SlackLink.installation_id == installation_id)
    )
    return set(rows.all())


def link_workspace(
    *, session: Session, team_id: str, installation_id: int, created_by: str | None
) -> tuple[SlackLink, bool]:
    """Link a workspace to an installation; return the link and whether it is new."""
    link = session.scalars(
        select(SlackLink).where(
            SlackLink.team_id == team_id, SlackLink.installation_id == installation_id
        )
    ).first()
    if link is not None:
        return link, False
    link = SlackLink(team_id=team_id, installation_id=installation_id, created_by=created_by)
    session.add(link)
    session.flush()
    return link, True


def find_repository(*, session: Session, full_name: str) -> Repository | None:
    """Return the stored repository of a lower-case OWNER/NAME, preferring one still installed."""
    rows = session.scalars(
        select(Repository)
        .where(Repository.full_name == full_name.lower())
        .order_by(Repository.removed, Repository.updated_at.desc())  # type: ignore[attr-defined]
    ).all()
    return rows[0] if rows else None


def list_repositories(*, session: Session, installation_ids: Iterable[int]) -> Sequence[Repository]:
    """Return the repositories of the given installations that were not removed, by name."""
    ids = sorted(set(installation_ids))
    if not ids:
        return []
    return session.scalars(
        select(Repository)
        .where(Repository.installation_id.in_(ids), Repository.removed.is_(False))  # type: ignore[union-attr,attr-defined]
        .order_by(Repository.full_name)
    ).all()


def get_installation(*, session: Session, installation_id: int) -> Installation | None:
    """Return a stored GitHub installation."""
    return session.get(Installation, installation_id)


def find_subscription(
    *,
    session: Session,
    team_id: str,
    channel_id: str,
    repo: str,
    branch: str = "",
    workflow: str = "",
) -> SlackSubscription | None:
    """Return the subscription with exactly these keys, if any."""
    return session.scalars(
        select(SlackSubscription).where(
            SlackSubscription.team_id == team_id,
            SlackSubscription.channel_id == channel_id,
            SlackSubscription.repo == repo,
            SlackSubscription.branch == branch,
            SlackSubscription.workflow == workflow,
        )
    ).first()


def add_subscription(
    *,
    session: Session,
    team_id: str,
    channel_id: str,
    repo: str,
    installation_id: int | None,
    events: str,
    branch: str = "",
    workflow: str = "",
    created_by: str | None = None,
) -> tuple[SlackSubscription, str]:
    """Subscribe a channel to a repository; return it and `created`, `updated` or `exists`.

    A subscription with the same channel, repository, branch and workflow is the same
    subscription: asking again with other events updates them instead of adding a row.
    """
    existing = find_subscription(
        session=session,
        team_id=team_id,
        channel_id=channel_id,
        repo=repo,
        branch=branch,
        workflow=workflow,
    )
    if existing is not None:
        if existing.events == events:
            return existing, "exists"
        existing.events = events
        session.add(existing)
        return existing, "updated"

    subscription = SlackSubscription(
        team_id=team_id,
        channel_id=channel_id,
        repo=repo,
        installation_id=installation_id,
        events=events,
        branch=branch,
        workflow=workflow,
        created_by=created_by,
    )
    session.add(subscription)
    session.flush()
    return subscription, "created"


def remove_subscriptions(
    *,
    session: Session,
    team_id: str,
    channel_id: str,
    repo: str,
    branch: str | None = None,
    workflow: str | None = None,
) -> int:
    """Delete a channel's subscriptions to a repository; None for branch or workflow means any."""
    statement = select(SlackSubscription).where(
        SlackSubscription.team_id == team_id,
        SlackSubscription.channel_id == channel_id,
        SlackSubscription.repo == repo,
    )
    if branch is not None:
        statement = statement.where(SlackSubscription.branch == branch)
    if workflow is not None:
        statement = statement.where(SlackSubscription.workflow == workflow)
    rows = session.scalars(statement).all()
    for row in rows:
        session.delete(row)
    return len(rows)


def list_subscriptions(
    *, session: Session, team_id: str, channel_id: str | None = None
) -> Sequence[SlackSubscription]:
    """Return a workspace's subscriptions, or one channel's, by repository and channel."""
    statement = select(SlackSubscription).where(SlackSubscription.team_id == team_id)
    if channel_id is not None:
        statement = statement.where(SlackSubscription.channel_id == channel_id)
    return session.scalars(
        statement.order_by(
            SlackSubscription.repo, SlackSubscription.channel_id, SlackSubscription.id
        )
    ).all()


def subscriptions_for_repo(*, session: Session, repo: str) -> Sequence[SlackSubscription]:
    """Return every subscription to a repository, in any workspace."""
    return session.scalars(
        select(SlackSubscription)
        .where(SlackSubscription.repo == repo)
        .order_by(SlackSubscription.id)
    ).all()


def find_status_message(
    *, session: Session, team_id: str, channel_id: str, run_id: int
) -> SlackStatusMessage | None:
    """Return the live status message of a run in a channel, if there is one."""
    return session.scalars(
        select(SlackStatusMessage).where(
            SlackStatusMessage.team_id == team_id,
            SlackStatusMessage.channel_id == channel_id,
            SlackStatusMessage.run_id == run_id,
        )
    ).first()


def ensure_status_message(
    *, session: Session, team_id: str, channel_id: str, run_id: int
) -> tuple[SlackStatusMessage, bool]:
    """Return the live status message of a run in a channel, creating it; and whether it is new."""
    message = find_status_message(
        session=session, team_id=team_id, channel_id=channel_id, run_id=run_id
    )
    if message is not None:
        return message, False
    message = SlackStatusMessage(team_id=team_id, channel_id=channel_id, run_id=run_id)
    session.add(message)
    session.flush()
    return message, True


def get_status_message(*, session: Session, message_id: int) -> SlackStatusMessage | None:
    """Return one live status message."""
    return session.get(SlackStatusMessage, message_id)


def claim_first_post(
    *, session: Session, message_id: int, lease: timedelta, now: datetime | None = None
) -> bool:
    """Take the right to post a message that has no `ts` yet, or return False if another sender has it."""
    now = now or utc_now()
    result = session.execute(
        update(SlackStatusMessage)
        .where(
            SlackStatusMessage.id == message_id,
            SlackStatusMessage.ts.is_(None),  # type: ignore[union-attr]
            or_(
                SlackStatusMessage.posting_until.is_(None),  # type: ignore[union-attr]
                SlackStatusMessage.posting_until < now,  # type: ignore[operator]
            ),
        )
        .values(posting_until=now + lease)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_posted(*, session: Session, message_id: int, ts: str, is_final: bool) -> None:
    """Store the `ts` Slack returned for a live status message, exactly as returned."""
    session.execute(
        update(SlackStatusMessage)
        .where(SlackStatusMessage.id == message_id)
        .values(ts=ts, posting_until=None, is_final=is_final, last_error=None, updated_at=utc_now())
    )


def record_status_error(
    *, session: Session, message_id: int, error: str, forget_ts: bool = False
) -> None:
    """Note why a live status message could not be sent; `forget_ts` when Slack lost the message."""
    values: dict[str, object] = {
        "last_error": error[:500],
        "posting_until": None,
        "updated_at": utc_now(),
    }
    if forget_ts:
        values["ts"] = None
    session.execute(
        update(SlackStatusMessage).where(SlackStatusMessage.id == message_id).values(**values)
    )


def live_status_key(message: SlackStatusMessage) -> str:
    """Return the outbox dedupe key of the message's current update."""
    return f"slack_live_status:{message.id}:{message.update_seq}"


def queue_live_status_update(*, session: Session, message: SlackStatusMessage, kind: str) -> bool:
    """Queue an edit of a live status message unless one is waiting or Slack refused it for good;
    return whether one was queued.

    The sender renders the run as it is when it sends, so one waiting edit covers every
    change made before it is sent. The waiting row is read with a row lock, so on
    PostgreSQL a sender cannot claim it between this check and the commit of the change.
    """
    waiting = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.dedupe_key == live_status_key(message))
        .with_for_update()
    ).first()
    if waiting is not None and waiting.status == OutboxStatus.PENDING.value:
        return False
    if waiting is not None and waiting.status == OutboxStatus.FAILED.value:
        # Slack refused this message for good (channel archived, bot not invited); later
        # changes of the same run would be refused too.
        return False
    if waiting is not None:
        message.update_seq += 1
        session.add(message)
    outbox.enqueue(
        session=session,
        kind=kind,
        target=f"{message.team_id}/{message.channel_id}",
        payload={"message_id": message.id, "run_id": message.run_id},
        dedupe_key=live_status_key(message),
    )
    return True
