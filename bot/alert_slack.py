"""Outbox senders of failure alerts: the Slack sender of root messages, edits and thread replies,
the GitHub sender of "Re-run failed jobs", and the failure hook that pauses a subscription
Slack rejects for good.

A root message is posted once: its `ts` is stored on the post as soon as Slack returns it and
checked before every post, so a message already sent is not sent again after a restart.
Replies and edits use that exact `ts`, read from the root message's outbox result. Messages
are rendered when they are sent, from the stored incident and run, so jobs reported after
the failure still appear.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

from sqlalchemy import Engine
from sqlmodel import Session

from bot import outbox as outbox_sender
from bot.alert_outbox import API_ALERT_KIND, ApiAlertSender
from bot.alert_render import SlackMessage
from bot.alert_settings import check_alert_settings, configured_users
from bot.alert_views import gather_draft, render_draft
from bot.config import Settings
from bot.github_client import GitHubApp, GitHubCallError, split_repo
from bot.github_outbox import blocked_reason, outbox_error
from bot.outbox import PermanentFailure, RetryLater
from bot.slack_delivery import classify_error, installation_store, web_client
from storage import alert_rules, incidents, outbox
from storage.db import session_scope
from storage.models_alerts import AlertPost
from storage.outbox import OutboxMessage, OutboxStatus

# slack_sdk is imported where Slack is called, so that a process without Slack settings never loads it.
if TYPE_CHECKING:
    from slack_sdk import WebClient

logger = logging.getLogger(__name__)

RERUN_KIND = incidents.RERUN_KIND
# Slack errors after which a channel gets no more alerts until someone fixes it, from the
# error list of chat.postMessage. The token errors pause the whole workspace.
PAUSE_CODES = frozenset(
    {"channel_not_found", "is_archived", "not_in_channel", "invalid_auth", "account_inactive"}
)
TOKEN_CODES = frozenset({"invalid_auth", "account_inactive"})
ROOT_NOT_POSTED = "root_not_posted"
# A reply waits this long at least for its root message to be posted.
ROOT_WAIT_SECONDS = 5.0
# An email that users.lookupByEmail did not find is looked up again after this long.
LOOKUP_MISS_TTL = timedelta(days=1)
# GitHub's private commit emails belong to no Slack user.
NOREPLY_SUFFIX = "users.noreply.github.com"


class AlertSlackSender:
    """Outbox sender of `slack_alert` messages: chat.postMessage once per post, then chat.update and replies."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.store = installation_store(settings, engine)
        self.users = configured_users(settings)

    def bot_token(self, team_id: str) -> str | None:
        """Return the bot token for a workspace: its OAuth install's, else SLACK_BOT_TOKEN."""
        if self.store is not None:
            bot = self.store.find_bot(enterprise_id=None, team_id=team_id)
            if bot is not None and bot.bot_token:
                return bot.bot_token
        if self.settings.slack_bot_token is not None:
            return self.settings.slack_bot_token.get_secret_value()
        return None

    def client(self, team_id: str) -> WebClient:
        """Return a Web API client acting as the bot of a workspace, or raise PermanentFailure."""
        token = self.bot_token(team_id)
        if token is None:
            raise PermanentFailure(
                f"no Slack bot token for workspace {team_id}: install the Slack app there again",
                code="no_token",
            )
        return web_client(token, self.settings)

    def __call__(self, message: OutboxMessage) -> dict[str, Any]:
        """Send one message about an incident; return the channel and `ts` Slack gave it."""
        post_id = int(message.payload.get("post_id") or 0)
        action = str(message.payload.get("action") or "")
        with Session(self.engine, expire_on_commit=False) as session:
            post = incidents.get_post(session=session, post_id=post_id)
            if post is None:
                raise PermanentFailure(f"alert post {post_id} no longer exists", code="gone")
            if action == incidents.OPEN and post.ts is not None:
                # Posted before a restart cut the outbox row short: the stored ts is that message.
                return {
                    "channel": post.posted_channel or post.channel_id,
                    "ts": post.ts,
                    "already_posted": True,
                }
            root_ts = None if action == incidents.OPEN else self.root_ts(session, post)
            try:
                draft = gather_draft(session, post, message.payload)
            except LookupError as exc:
                raise PermanentFailure(str(exc), code="gone") from exc

        client = self.client(post.team_id)
        from slack_sdk.errors import SlackApiError

        if action in (incidents.OPEN, incidents.UPDATE) or draft.note == "failure":
            draft.mention = self.mention_for(client, post.team_id, draft.actor, draft.author_email)
        try:
            content = render_draft(draft, users=self.users)
        except LookupError as exc:
            raise PermanentFailure(str(exc), code="unknown_message") from exc
        channel = post.posted_channel or post.channel_id
        extra = {
            "outbox_id": message.id,
            "post_id": post.id,
            "channel": channel,
            "team_id": post.team_id,
            "action": action,
        }
        try:
            result = self.send(client, post, action, root_ts, content)
        except SlackApiError as exc:
            error = classify_error(exc, channel_id=channel)
            with session_scope(self.engine) as session:
                incidents.record_post_error(session=session, post_id=post.id or 0, error=str(error))
            raise error from exc
        except (URLError, OSError) as exc:
            raise RetryLater(f"Slack could not be reached: {exc}") from exc
        logger.info("alert message sent", extra={**extra, "ts": result.get("ts")})
        return result

    def send(
        self,
        client: WebClient,
        post: AlertPost,
        action: str,
        root_ts: str | None,
        content: SlackMessage,
    ) -> dict[str, Any]:
        """Make the one Web API call of an action and record a root message's `ts`."""
        if action == incidents.OPEN:
            response = client.chat_postMessage(
                channel=post.channel_id,
                unfurl_links=False,
                unfurl_media=False,
                **content.as_kwargs(),
            )
            # Slack identifies the message by this exact string; it is stored unchanged.
            ts = str(response["ts"])
            channel = str(response.get("channel") or post.channel_id)
            with session_scope(self.engine) as session:
                incidents.record_post_ts(
                    session=session, post_id=post.id or 0, ts=ts, channel=channel
                )
            return {"channel": channel, "ts": ts}
        channel = post.posted_channel or post.channel_id
        if action == incidents.UPDATE:
            client.chat_update(channel=channel, ts=root_ts, **content.as_kwargs())
            return {"channel": channel, "ts": root_ts}
        response = client.chat_postMessage(
            channel=channel,
            thread_ts=root_ts,
            unfurl_links=False,
            unfurl_media=False,
            **content.as_kwargs(),
        )
        return {"channel": channel, "ts": str(response["ts"]), "thread_ts": root_ts}

    def root_ts(self, session: Session, post: AlertPost) -> str:
        """Return the `ts` of a post's root message, or raise: wait for it, or give up if it failed."""
        result = (
            outbox.find_sent_result(
                session=session, dedupe_key=incidents.open_message_key(post.id or 0)
            )
            or {}
        )
        ts = result.get("ts") or post.ts
        if ts:
            return str(ts)
        root = incidents.root_message(session=session, post_id=post.id or 0)
        if root is None or root.status == OutboxStatus.FAILED.value:
            raise PermanentFailure(
                f"the root message of alert post {post.id} in channel {post.channel_id} was never posted, "
                "so this message has no thread to go to",
                code=ROOT_NOT_POSTED,
            )
        wait = max(ROOT_WAIT_SECONDS, (root.next_attempt_at - incidents.now()).total_seconds() + 1)
        raise RetryLater(
            f"the root message of alert post {post.id} is not posted yet", retry_after=wait
        )

    def mention_for(
        self, client: WebClient, team_id: str, login: str | None, email: str | None
    ) -> str | None:
        """Return the Slack user of a GitHub login (configured) or of a commit email (users.lookupByEmail)."""
        if login:
            configured = self.users.get(login.lower())
            if configured:
                return configured
            with Session(self.engine) as session:
                stored = alert_rules.find_login_mapping(
                    session=session, team_id=team_id, github_login=login
                )
            if stored:
                return stored
        if not email or "@" not in email or email.lower().endswith(NOREPLY_SUFFIX):
            return None
        with Session(self.engine) as session:
            known = alert_rules.find_email_lookup(session=session, team_id=team_id, email=email)
        if known is not None and (known.slack_user_id or is_recent(known.updated_at)):
            return known.slack_user_id
        return self.look_up_email(client, team_id, email)

    def look_up_email(self, client: WebClient, team_id: str, email: str) -> str | None:
        """Look up the Slack user of an email and store the result; None if no user has it or the lookup failed."""
        from slack_sdk.errors import SlackApiError

        try:
            response = client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            code = str(exc.response.get("error")) if exc.response is not None else "unknown_error"
            if code != "users_not_found":
                # The alert goes out without the mention; missing_scope means users:read.email is not granted.
                logger.warning("users.lookupByEmail failed: %s", code, extra={"team_id": team_id})
                return None
            user_id = None
        except (URLError, OSError) as exc:
            logger.warning(
                "users.lookupByEmail could not reach Slack: %s", exc, extra={"team_id": team_id}
            )
            return None
        else:
            user = response.get("user") or {}
            user_id = str(user["id"]) if isinstance(user, dict) and user.get("id") else None
        with session_scope(self.engine) as session:
            alert_rules.store_email_lookup(
                session=session, team_id=team_id, email=email, slack_user_id=user_id
            )
        return user_id


def is_recent(when: datetime) -> bool:
    """Tell whether a lookup that found no user is recent enough not to ask Slack again."""
    return incidents.now() - when < LOOKUP_MISS_TTL


def pause_on_permanent_failure(
    session: Session, message: OutboxMessage, exc: PermanentFailure
) -> None:
    """Failure hook: pause the subscription (or rule) whose channel Slack rejects for good."""
    if message.kind != incidents.SLACK_ALERT_KIND or exc.code not in PAUSE_CODES:
        return
    post = incidents.get_post(session=session, post_id=int(message.payload.get("post_id") or 0))
    if post is None:
        return
    detail = f"Slack returned {exc.code} when posting to this channel"
    paused = 0
    if exc.code in TOKEN_CODES:
        detail = f"Slack returned {exc.code} for this workspace's bot token"
        paused = alert_rules.pause_team_subscriptions(
            session=session, team_id=post.team_id, reason=exc.code, detail=detail
        )
    elif post.subscription_id is not None:
        paused = int(
            alert_rules.pause_subscription(
                session=session,
                subscription_id=post.subscription_id,
                reason=exc.code,
                detail=detail,
            )
        )
    if post.route_id is not None:
        alert_rules.pause_route(session=session, route_id=post.route_id, reason=detail)
    logger.warning(
        "alerts paused: %s",
        detail,
        extra={
            "team_id": post.team_id,
            "channel": post.channel_id,
            "subscription_id": post.subscription_id,
            "route_id": post.route_id,
            "paused": paused,
        },
    )


class RerunSender:
    """Outbox sender of "Re-run failed jobs": POST .../actions/runs/{run_id}/rerun-failed-jobs as the installation."""

    def __init__(self, engine: Engine, github: GitHubApp) -> None:
        self.engine = engine
        self.github = github

    def __call__(self, message: OutboxMessage) -> dict[str, Any]:
        """Ask GitHub to re-run a run's failed jobs, then note it in the incident's thread."""
        payload = message.payload
        repo = str(payload.get("repo") or "")
        run_id = payload.get("run_id")
        installation_id = payload.get("installation_id")
        if not repo or not isinstance(run_id, int) or not isinstance(installation_id, int):
            raise PermanentFailure(
                f"the re-run message lacks repo, run_id or installation_id: {payload!r}"
            )
        reason = blocked_reason(self.engine, installation_id)
        if reason is not None:
            self.note(message, "rerun_failed", error=reason)
            return {"skipped": reason}

        owner, name = split_repo(repo)
        try:
            self.github.call(
                installation_id,
                "re-run failed jobs",
                lambda github: github.rest.actions.re_run_workflow_failed_jobs(owner, name, run_id),
            )
        except GitHubCallError as exc:
            error = outbox_error(self.engine, message, exc)
            if isinstance(error, PermanentFailure):
                self.note(message, "rerun_failed", error=str(exc))
            raise error from exc
        logger.info(
            "failed jobs re-run requested",
            extra={"repo": repo, "run_id": run_id, "outbox_id": message.id},
        )
        self.note(message, "rerun")
        return {"requested": True}

    def note(self, message: OutboxMessage, note: str, **fields: Any) -> None:
        """Queue a reply in the thread the button was pressed in."""
        post_id = message.payload.get("post_id")
        if not isinstance(post_id, int):
            return
        with session_scope(self.engine) as session:
            post = incidents.get_post(session=session, post_id=post_id)
            if post is None:
                return
            incidents.queue_post_message(
                session=session,
                post=post,
                action=incidents.REPLY,
                key=f"{note}:{message.id}",
                note=note,
                failure_id=message.payload.get("failure_id"),
                user_id=message.payload.get("user_id"),
                **fields,
            )


def register_alert_senders(
    engine: Engine, settings: Settings, *, github: GitHubApp | None = None
) -> None:
    """Check the alert settings; register the alert senders (Slack incidents, re-runs, the Python API's
    unfinished alerts) and the pausing failure hook."""
    check_alert_settings(settings)
    if pause_on_permanent_failure not in outbox_sender.FAILURE_HOOKS:
        outbox_sender.register_failure_hook(pause_on_permanent_failure)
    if settings.has_slack or settings.has_slack_oauth:
        outbox_sender.register_sender(
            incidents.SLACK_ALERT_KIND, AlertSlackSender(settings, engine)
        )
    github = github or GitHubApp.from_settings(settings)
    if github is not None:
        outbox_sender.register_sender(RERUN_KIND, RerunSender(engine, github))
    outbox_sender.register_sender(API_ALERT_KIND, ApiAlertSender(engine, settings))

