"""Channel digests: the scheduled job that queues each channel's daily or weekly summary once per
period, and the outbox sender that posts it.

A daily digest is due from DIGEST_TIME_UTC each day and covers the previous UTC day. A weekly
digest is due from DIGEST_TIME_UTC on Monday and covers the previous Monday to Sunday. A check
after the due time (a restart, a missed run) still posts the period's digest. Each channel gets
one digest per period even with several processes: the period is claimed in `job_run`
(`locks.claim_period`) in the transaction that queues the message, and the message's outbox
dedupe key names the channel and the period.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from bot.config import Settings
from bot.outbox import PermanentFailure, RetryLater, register_sender
from bot.render.slack_digest import DigestView, render_digest
from bot.slack_delivery import classify_error, installation_store, web_client
from storage import digests, locks, outbox
from storage.db import session_scope
from storage.models_digest import ChannelDigest
from storage.outbox import OutboxMessage
from storage.types import utc_now

if TYPE_CHECKING:
    from bot.scheduler import ScheduledJob

logger = logging.getLogger(__name__)

DIGEST_KIND = "slack_digest"
DIGEST_CHECK_SECONDS = 60.0
DIGEST_FIRST_DELAY_SECONDS = 60.0
# Repositories whose figures a digest gathers; the rest are counted in "and N more".
MAX_DIGEST_REPOS = 50


@dataclass(frozen=True)
class DigestWindow:
    """The period a digest belongs to (`2024-06-03`, `2024-W23`) and the time it covers."""

    period: str
    since: datetime
    until: datetime

    @property
    def previous_since(self) -> datetime:
        """Start of the period before, the baseline of the trend."""
        return self.since - (self.until - self.since)


def parse_digest_time(text: str) -> time:
    """Return DIGEST_TIME_UTC (`HH:MM`, checked by Settings) as a UTC time of day."""
    hours, _, minutes = text.partition(":")
    return time(int(hours), int(minutes), tzinfo=UTC)


def due_window(frequency: str, now: datetime, digest_time: str) -> DigestWindow | None:
    """Return the window of the latest digest due at `now`, or None before today's (or Monday's) digest time."""
    today = now.astimezone(UTC).date()
    if frequency == "weekly":
        day = today - timedelta(days=today.weekday())
        iso = day.isocalendar()
        period = f"weekly:{iso.year}-W{iso.week:02d}"
        length = timedelta(days=7)
    else:
        day = today
        period = f"daily:{day.isoformat()}"
        length = timedelta(days=1)
    if now < datetime.combine(day, parse_digest_time(digest_time)):
        return None
    until = datetime.combine(day, time(0, tzinfo=UTC))
    return DigestWindow(period=period, since=until - length, until=until)


def digest_target(digest: ChannelDigest) -> str:
    """Return the outbox target of a channel's digests: its workspace and channel."""
    return f"{digest.team_id}/{digest.channel_id}"


def queue_due_digests(engine: Engine, settings: Settings, *, now: datetime | None = None) -> int:
    """Queue the digest of each channel whose period is due and not yet claimed; return how many were queued."""
    now = now or utc_now()
    with session_scope(engine) as session:
        schedules = [(row.id, row.frequency) for row in digests.list_digests(session=session)]
    queued = 0
    for digest_id, frequency in schedules:
        window = due_window(frequency, now, settings.digest_time_utc)
        if window is None:
            continue
        try:
            queued += queue_digest(engine, digest_id or 0, window, now)
        except Exception:  # one channel's failure must not hold back the others
            logger.exception(
                "digest could not be queued",
                extra={"digest_id": digest_id, "period": window.period},
            )
    return queued


def queue_digest(engine: Engine, digest_id: int, window: DigestWindow, now: datetime) -> int:
    """Claim one channel's period and queue its digest in the same transaction; return 1 if queued."""
    with session_scope(engine) as session:
        digest = session.get(ChannelDigest, digest_id)
        if digest is None:
            return 0
        job = f"digest:{digest.team_id}:{digest.channel_id}"
        extra = {"team_id": digest.team_id, "channel": digest.channel_id, "period": window.period}
        if locks.has_period(session=session, job=job, period=window.period):
            return 0
        if not locks.claim_period(session=session, job=job, period=window.period, now=now):
            return 0

        repos = digests.followed_repositories(
            session=session, team_id=digest.team_id, channel_id=digest.channel_id
        )
        if not repos:
            logger.info("no digest: the channel follows no repositories", extra=extra)
            return 0
        figures = [
            digests.gather_figures(
                session=session,
                repo=repo,
                since=window.since,
                until=window.until,
                previous_since=window.previous_since,
            )
            for repo in repos[:MAX_DIGEST_REPOS]
        ]
        view = DigestView(
            frequency=digest.frequency,
            since=window.since,
            until=window.until,
            repos=figures,
            more_repos=max(0, len(repos) - MAX_DIGEST_REPOS),
        )
        message = render_digest(view)
        outbox.enqueue(
            session=session,
            kind=DIGEST_KIND,
            target=digest_target(digest),
            payload={
                "team_id": digest.team_id,
                "channel": digest.channel_id,
                **message.as_kwargs(),
            },
            dedupe_key=f"{DIGEST_KIND}:{digest.team_id}/{digest.channel_id}:{window.period}",
        )
    logger.info("digest queued", extra={**extra, "repos": len(repos)})
    return 1


class DigestSender:
    """Outbox sender of digests: one chat.postMessage with the rendered text and blocks."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.store = installation_store(settings, engine)

    def bot_token(self, team_id: str) -> str | None:
        """Return the bot token for a workspace: its OAuth install's, else SLACK_BOT_TOKEN."""
        if self.store is not None:
            bot = self.store.find_bot(enterprise_id=None, team_id=team_id)
            if bot is not None and bot.bot_token:
                return bot.bot_token
        if self.settings.slack_bot_token is not None:
            return self.settings.slack_bot_token.get_secret_value()
        return None

    def __call__(self, message: OutboxMessage) -> dict[str, Any]:
        """Post one digest; return the channel and `ts` Slack gave it."""
        team_id = str(message.payload.get("team_id") or "")
        channel = str(message.payload.get("channel") or "")
        token = self.bot_token(team_id)
        if token is None:
            raise PermanentFailure(
                f"no Slack bot token for workspace {team_id}: install the Slack app there again",
                code="no_token",
            )
        client = web_client(token, self.settings)
        from slack_sdk.errors import SlackApiError

        # NOTE: a process killed after Slack accepted the post and before the outbox row was
        # marked sent posts the digest again on the retry; Slack offers no idempotency key.
        try:
            response = client.chat_postMessage(
                channel=channel,
                text=message.payload.get("text") or "",
                blocks=message.payload.get("blocks"),
            )
        except SlackApiError as exc:
            raise classify_error(exc, channel_id=channel) from exc
        except OSError as exc:
            raise RetryLater(f"Slack could not be reached for channel {channel}: {exc}") from exc
        logger.info(
            "digest posted", extra={"outbox_id": message.id, "channel": channel, "team_id": team_id}
        )
        return {"channel": response.get("channel"), "ts": response.get("ts")}


def register_digest_sender(engine: Engine, settings: Settings) -> None:
    """Register the digest sender when the bot can post to Slack."""
    if settings.has_slack or settings.has_slack_oauth:
        register_sender(DIGEST_KIND, DigestSender(settings, engine))


def run_digests(engine: Engine, settings: Settings) -> None:
    """Scheduled job: queue the digests that are due."""
    queue_due_digests(engine, settings)


def digest_job(settings: Settings) -> ScheduledJob:
    """Return the digest job, which checks every minute for digests that are due."""
    # Imported here because bot.scheduler imports this module to register the job.
    from bot.scheduler import ScheduledJob

    return ScheduledJob(
        id="digests",
        function=run_digests,
        interval_seconds=DIGEST_CHECK_SECONDS,
        first_delay_seconds=DIGEST_FIRST_DELAY_SECONDS,
    )
