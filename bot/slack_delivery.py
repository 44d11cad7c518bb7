"""Sending to the Slack Web API from the outbox: bot tokens per workspace, error classification,
and the live status sender that posts a message once and edits it afterwards."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

from sqlalchemy import Engine
from sqlmodel import Session

from bot.config import Settings
from bot.observability import record_api_error
from bot.outbox import PermanentFailure, RetryLater
from handlers.slack.live_status import build_live_message
from storage import slack as slack_store
from storage.db import session_scope
from storage.models_slack import SLACK_BOTS_TABLE, SLACK_INSTALLATIONS_TABLE
from storage.outbox import OutboxMessage

# slack_sdk is imported in the functions that call Slack, so that a process without Slack
# settings never loads it.
if TYPE_CHECKING:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore

logger = logging.getLogger(__name__)

# How long one sender may hold the right to make a message's first post.
FIRST_POST_LEASE = timedelta(minutes=2)
# Slack error codes that another attempt may get past (Web API docs, "Errors" of each method).
TEMPORARY_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def api_base_url(settings: Settings) -> str:
    """Return SLACK_API_URL with the trailing slash slack_sdk needs to join method names."""
    return (
        settings.slack_api_url
        if settings.slack_api_url.endswith("/")
        else settings.slack_api_url + "/"
    )


def installation_store(settings: Settings, engine: Engine) -> SQLAlchemyInstallationStore | None:
    """Return the installation store of multi-workspace mode, or None in single-workspace mode."""
    if not settings.has_slack_oauth or settings.slack_client_id is None:
        return None
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore

    return SQLAlchemyInstallationStore(
        client_id=settings.slack_client_id,
        engine=engine,
        bots_table_name=SLACK_BOTS_TABLE,
        installations_table_name=SLACK_INSTALLATIONS_TABLE,
        logger=logging.getLogger("slack_sdk.oauth"),
    )


def web_client(token: str, settings: Settings) -> WebClient:
    """Return a Web API client that acts with a bot token."""
    from slack_sdk import WebClient

    return WebClient(token=token, base_url=api_base_url(settings))


def header_value(headers: dict[str, Any], name: str) -> str | None:
    """Read a response header case-insensitively; slack_sdk may give a value or a list of values."""
    for key, value in headers.items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, (list, tuple)) and value else value)
    return None


def classify_error(exc: SlackApiError, *, channel_id: str) -> RetryLater | PermanentFailure:
    """Turn a Slack API error into a retry (429, 5xx, temporary codes) or a permanent failure."""
    response = exc.response
    status = getattr(response, "status_code", 0)
    code = str(response.get("error") or status) if response is not None else "unknown_error"
    record_api_error("slack", code)
    if status == 429:
        retry_after = header_value(getattr(response, "headers", {}) or {}, "retry-after")
        wait = float(retry_after) if retry_after and retry_after.isdigit() else 30.0
        return RetryLater(
            f"Slack rate-limited channel {channel_id}; retrying after {wait:.0f} s",
            retry_after=wait,
            throttle_target=True,
        )
    if status >= 500 or code in TEMPORARY_ERRORS:
        return RetryLater(f"Slack returned {code} (HTTP {status}) for channel {channel_id}")
    return PermanentFailure(f"Slack returned {code} for channel {channel_id}", code=code)


class LiveStatusSender:
    """Outbox sender of live status messages: chat.postMessage once, then chat.update with the stored ts."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.store = installation_store(settings, engine)

    def bot_token(self, team_id: str) -> str | None:
        """Return the bot token for a workspace: SLACK_BOT_TOKEN, or the one its OAuth install stored."""
        if self.store is not None:
            bot = self.store.find_bot(enterprise_id=None, team_id=team_id)
            if bot is not None and bot.bot_token:
                return bot.bot_token
        if self.settings.slack_bot_token is not None:
            return self.settings.slack_bot_token.get_secret_value()
        return None

    def __call__(self, outbox_message: OutboxMessage) -> dict[str, Any]:
        """Send the current state of one live status message; return its channel and ts."""
        message_id = int(outbox_message.payload.get("message_id", 0))
        with Session(self.engine, expire_on_commit=False) as session:
            status_message = slack_store.get_status_message(session=session, message_id=message_id)
        if status_message is None:
            raise PermanentFailure(f"live status message {message_id} no longer exists")
        rendered = build_live_message(self.engine, status_message.run_id)
        if rendered is None:
            raise PermanentFailure(
                f"run {status_message.run_id} of live status message {message_id} no longer exists"
            )
        slack_message, finished = rendered

        token = self.bot_token(status_message.team_id)
        if token is None:
            raise PermanentFailure(
                f"no Slack bot token for workspace {status_message.team_id}: install the Slack app there again"
            )
        client = web_client(token, self.settings)
        channel_id = status_message.channel_id
        extra = {
            "run_id": status_message.run_id,
            "channel": channel_id,
            "team_id": status_message.team_id,
        }

        if status_message.ts is None:
            ts = self.post(client, message_id, channel_id, slack_message.as_kwargs(), finished)
            logger.info("live status posted", extra={**extra, "ts": ts})
        else:
            ts = self.update(
                client,
                message_id,
                channel_id,
                status_message.ts,
                slack_message.as_kwargs(),
                finished,
            )
            logger.info("live status updated", extra={**extra, "ts": ts})
        return {"channel": channel_id, "ts": ts}

    def post(
        self,
        client: WebClient,
        message_id: int,
        channel_id: str,
        content: dict[str, Any],
        finished: bool,
    ) -> str:
        """Make the first post, holding a lease so that no other sender posts it too."""
        with session_scope(self.engine) as session:
            claimed = slack_store.claim_first_post(
                session=session, message_id=message_id, lease=FIRST_POST_LEASE
            )
        if not claimed:
            raise RetryLater(
                f"another sender is posting live status message {message_id}", retry_after=5
            )
        from slack_sdk.errors import SlackApiError

        try:
            response = client.chat_postMessage(channel=channel_id, **content)
        except SlackApiError as exc:
            self.record_error(message_id, str(exc.response.get("error")))
            raise classify_error(exc, channel_id=channel_id) from exc
        except (URLError, OSError) as exc:
            self.record_error(message_id, repr(exc))
            raise RetryLater(f"Slack could not be reached: {exc}") from exc
        # Slack identifies the message by this exact string; it is stored unchanged.
        ts = str(response["ts"])
        with session_scope(self.engine) as session:
            slack_store.record_posted(
                session=session, message_id=message_id, ts=ts, is_final=finished
            )
        return ts

    def update(
        self,
        client: WebClient,
        message_id: int,
        channel_id: str,
        ts: str,
        content: dict[str, Any],
        finished: bool,
    ) -> str:
        """Edit the posted message; if Slack lost it, forget its ts so that the retry posts it again."""
        from slack_sdk.errors import SlackApiError

        try:
            client.chat_update(channel=channel_id, ts=ts, **content)
        except SlackApiError as exc:
            code = str(exc.response.get("error"))
            if code in ("message_not_found", "cant_update_message"):
                with session_scope(self.engine) as session:
                    slack_store.record_status_error(
                        session=session, message_id=message_id, error=code, forget_ts=True
                    )
                raise RetryLater(
                    f"Slack returned {code} for live status message {message_id}, so it is posted again",
                    retry_after=0,
                ) from exc
            self.record_error(message_id, code)
            raise classify_error(exc, channel_id=channel_id) from exc
        except (URLError, OSError) as exc:
            raise RetryLater(f"Slack could not be reached: {exc}") from exc
        with session_scope(self.engine) as session:
            slack_store.record_posted(
                session=session, message_id=message_id, ts=ts, is_final=finished
            )
        return ts

    def record_error(self, message_id: int, error: str) -> None:
        """Note the error on the message and release the first-post lease."""
        with session_scope(self.engine) as session:
            slack_store.record_status_error(session=session, message_id=message_id, error=error)
