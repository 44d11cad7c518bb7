"""The slack-bolt AsyncApp of the bot's Slack integration: its listeners, and the OAuth stores on
the bot's engine.

bot.slack_app imports this module only when Slack is configured, because slack-bolt,
slack_sdk and aiohttp take about 17 MB of memory (RSS) once imported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine

from bot.config import Settings
from bot.render.slack_messages import POST_TO_CHANNEL_ACTION, render_error
from bot.slack_app import (
    BOT_SCOPES,
    COMMAND,
    FAILED_RESPONSE,
    OAUTH_STATE_SECONDS,
    is_slack_configured,
)
from bot.slack_delivery import api_base_url, installation_store
from handlers.slack import dispatch, silences
from handlers.slack.context import CommandContext
from handlers.slack.home import publish_home
from storage.models_slack import SLACK_OAUTH_STATES_TABLE

logger = logging.getLogger(__name__)


class ThreadedInstallationStore(AsyncInstallationStore):
    """slack_sdk's SQLAlchemy installation store on the bot's engine, its calls run in worker threads."""

    def __init__(self, store: SQLAlchemyInstallationStore) -> None:
        self.store = store

    @property
    def logger(self) -> logging.Logger:
        return self.store.logger

    async def async_save(self, installation: Installation) -> None:
        await asyncio.to_thread(self.store.save, installation)

    async def async_save_bot(self, bot: Bot) -> None:
        await asyncio.to_thread(self.store.save_bot, bot)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        return await asyncio.to_thread(
            self.store.find_bot,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        return await asyncio.to_thread(
            self.store.find_installation,
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await asyncio.to_thread(self.store.delete_bot, enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await asyncio.to_thread(
            self.store.delete_installation,
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
        )


class ThreadedStateStore(AsyncOAuthStateStore):
    """slack_sdk's SQLAlchemy OAuth state store on the bot's engine, its calls run in worker threads."""

    def __init__(self, store: SQLAlchemyOAuthStateStore) -> None:
        self.store = store

    @property
    def logger(self) -> logging.Logger:
        return self.store.logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        return await asyncio.to_thread(self.store.issue)

    async def async_consume(self, state: str) -> bool:
        return await asyncio.to_thread(self.store.consume, state)


@dataclass
class SlackIntegration:
    """The bolt app of one FastAPI app, with the tasks computing command responses."""

    bolt: AsyncApp
    handler: AsyncSlackRequestHandler
    settings: Settings
    engine: Engine
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine in the background, keeping a reference so it is not garbage-collected."""
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout: float) -> None:
        """Wait for the responses being computed, then cancel what is left."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("slack responses cancelled at shutdown", extra={"tasks": len(pending)})

    def context(
        self,
        *,
        team_id: str,
        channel_id: str,
        user_id: str,
        text: str,
        client: AsyncWebClient | None,
        in_channel: bool = False,
    ) -> CommandContext:
        """Build the context of one command."""
        return CommandContext(
            settings=self.settings,
            engine=self.engine,
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            command_text=text,
            client=client,
            in_channel=in_channel,
        )


async def respond_once(ctx: CommandContext, respond: AsyncRespond) -> None:
    """Compute a command's response and send it once through its response_url."""
    try:
        message = await dispatch(ctx, ctx.command_text)
    except Exception:  # Broad on purpose: the person still gets a response, and the error is logged
        logger.exception("slack command failed", extra=ctx.log_extra())
        message = render_error(FAILED_RESPONSE)
    response_type = "in_channel" if ctx.in_channel else "ephemeral"
    try:
        response = await respond(
            response_type=response_type, replace_original=False, **message.as_kwargs()
        )
    except Exception:  # Broad on purpose: a failed post is logged, and the command is not run again
        logger.exception("slack response_url post failed", extra=ctx.log_extra())
        return
    if response.status_code != 200:
        logger.warning(
            "slack response_url post rejected: HTTP %s %s",
            response.status_code,
            (response.body or "")[:200],
            extra=ctx.log_extra(),
        )


def register_listeners(integration: SlackIntegration) -> None:
    """Register the `/release` command, the "Post to channel" button and the App Home tab."""
    bolt = integration.bolt

    @bolt.command(COMMAND)
    async def on_release(
        ack: Any, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        ctx = integration.context(
            team_id=str(body.get("team_id", "")),
            channel_id=str(body.get("channel_id", "")),
            user_id=str(body.get("user_id", "")),
            text=str(body.get("text") or ""),
            client=client,
        )
        integration.spawn(respond_once(ctx, respond))

    @bolt.action(POST_TO_CHANNEL_ACTION)
    async def on_post_to_channel(
        ack: Any,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        # The button carries the command text; running it again checks access again for the presser.
        ctx = integration.context(
            team_id=str((body.get("team") or {}).get("id", "")),
            channel_id=str((body.get("channel") or {}).get("id", "")),
            user_id=str((body.get("user") or {}).get("id", "")),
            text=str(action.get("value") or ""),
            client=client,
            in_channel=True,
        )
        integration.spawn(respond_once(ctx, respond))

    @bolt.event("app_home_opened")
    async def on_home_opened(
        event: dict[str, Any], context: dict[str, Any], client: AsyncWebClient
    ) -> None:
        if event.get("tab") != "home":
            return
        ctx = integration.context(
            team_id=str(context.get("team_id") or ""),
            channel_id=str(event.get("channel") or ""),
            user_id=str(event.get("user") or ""),
            text="",
            client=client,
        )
        try:
            await publish_home(ctx)
        except Exception:  # Broad on purpose: a failed Home tab must not fail the event
            logger.exception("slack home tab failed", extra=ctx.log_extra())

    silences.register_actions(integration)
    if bolt.installation_store is not None:
        bolt.event("app_uninstalled")(bolt.default_app_uninstalled_event_listener())
        bolt.event("tokens_revoked")(bolt.default_tokens_revoked_event_listener())


def build_integration(settings: Settings, engine: Engine) -> SlackIntegration | None:
    """Build the bolt app from the settings, or return None when Slack is not configured."""
    if not is_slack_configured(settings):
        return None
    signing_secret = settings.slack_signing_secret.get_secret_value()
    base_url = api_base_url(settings)
    bolt_logger = logging.getLogger("slack_bolt")

    store = installation_store(settings, engine)
    if store is not None and settings.slack_client_secret is not None:
        state_store = SQLAlchemyOAuthStateStore(
            expiration_seconds=OAUTH_STATE_SECONDS,
            engine=engine,
            table_name=SLACK_OAUTH_STATES_TABLE,
        )
        oauth_settings = AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=list(BOT_SCOPES),
            redirect_uri=f"{settings.public_url.rstrip('/')}/slack/oauth_redirect",
            install_path="/slack/install",
            redirect_uri_path="/slack/oauth_redirect",
            installation_store=ThreadedInstallationStore(store),
            installation_store_bot_only=True,
            state_store=ThreadedStateStore(state_store),
            state_expiration_seconds=OAUTH_STATE_SECONDS,
        )
        bolt = AsyncApp(
            signing_secret=signing_secret,
            client=AsyncWebClient(base_url=base_url),
            oauth_settings=oauth_settings,
            installation_store_bot_only=True,
            logger=bolt_logger,
        )
    else:
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        bolt = AsyncApp(
            signing_secret=signing_secret,
            client=AsyncWebClient(token=token, base_url=base_url),
            logger=bolt_logger,
        )

    integration = SlackIntegration(
        bolt=bolt, handler=AsyncSlackRequestHandler(bolt), settings=settings, engine=engine
    )
    register_listeners(integration)
    return integration
