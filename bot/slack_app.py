"""Slack on the bot's FastAPI server: `POST /slack/events` and the OAuth install routes of
multi-workspace mode, which hand each request to the slack-bolt AsyncApp of bot.slack_integration.

Slack gives a slash command 3 seconds for its HTTP response. Every `/release` command is
therefore acknowledged at once with an empty body, and its response is computed in a task
and sent once through the command's `response_url`. slack-bolt checks each request's v0
signature (HMAC-SHA256 of `v0:timestamp:body` with the signing secret) and rejects
timestamps more than 5 minutes away, so replayed requests fail.

Without Slack credentials the bot still runs: `/slack/events` returns 503 and the install
routes 404, each saying which settings are missing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from bot import outbox
from bot.config import Settings
from bot.slack_delivery import LiveStatusSender
from handlers.slack import live_status

# The bolt app is built in bot.slack_integration, imported only when Slack is configured.
if TYPE_CHECKING:
    from bot.slack_integration import SlackIntegration

logger = logging.getLogger(__name__)

COMMAND = "/release"
# Bot scopes: commands for /release, chat:write(.public) for shared responses and live status messages in
# public channels the bot has not joined, channels:read and groups:read to find `#name`,
# users:read and users:read.email to mention a failing commit's author (users.lookupByEmail).
BOT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "channels:read",
    "groups:read",
    "users:read",
    "users:read.email",
)
OAUTH_STATE_SECONDS = 600
# Seconds the server waits at shutdown for command responses still being computed.
SHUTDOWN_GRACE_SECONDS = 5.0

NOT_CONFIGURED = (
    "Slack is not configured: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN for one workspace, or "
    "SLACK_SIGNING_SECRET, SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install the app in several."
)
OAUTH_NOT_CONFIGURED = (
    "Slack installs are off: set SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET to enable "
    "/slack/install."
)
FAILED_RESPONSE = (
    "release-bot failed to respond to this command because of an internal error, which is in the "
    "bot's log. Try again later."
)


def is_slack_configured(settings: Settings) -> bool:
    """Tell whether the settings enable Slack: a signing secret, and a bot token or OAuth client."""
    return settings.slack_signing_secret is not None and (
        settings.has_slack or settings.has_slack_oauth
    )


@asynccontextmanager
async def slack_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start Slack after the bot's own lifespan has opened the database; stop it first."""
    settings: Settings = app.state.settings
    integration: SlackIntegration | None = None
    if is_slack_configured(settings):
        from bot.slack_integration import build_integration

        integration = build_integration(settings, app.state.engine)
    app.state.slack = integration
    if integration is None:
        yield
        return
    outbox.register_sender(live_status.OUTBOX_KIND, LiveStatusSender(settings, app.state.engine))
    mode = (
        "several workspaces (OAuth)" if integration.bolt.oauth_flow is not None else "one workspace"
    )
    logger.info("slack enabled", extra={"mode": mode})
    try:
        yield
    finally:
        await integration.drain(SHUTDOWN_GRACE_SECONDS)


router = APIRouter(tags=["slack"], lifespan=slack_lifespan)


@router.post("/slack/events")
async def slack_events(request: Request) -> Response:
    """Receive slash commands, button presses and events from Slack."""
    integration: SlackIntegration | None = getattr(request.app.state, "slack", None)
    if integration is None:
        return JSONResponse({"error": NOT_CONFIGURED}, status_code=503)
    response = await integration.handler.handle(request)
    if response.status_code == 401:
        logger.warning(
            "slack request rejected: invalid signature, or a timestamp more than 5 minutes away",
            extra={"request_timestamp": request.headers.get("x-slack-request-timestamp")},
        )
    return response


@router.get("/slack/install")
@router.get("/slack/oauth_redirect")
async def slack_oauth(request: Request) -> Response:
    """Start a Slack install, or finish one when Slack redirects back with a code."""
    integration: SlackIntegration | None = getattr(request.app.state, "slack", None)
    if integration is None or integration.bolt.oauth_flow is None:
        return JSONResponse({"error": OAUTH_NOT_CONFIGURED}, status_code=404)
    return await integration.handler.handle(request)
