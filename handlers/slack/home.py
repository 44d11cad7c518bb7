"""The App Home tab: the status of every repository followed anywhere in the user's workspace."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from bot.config import Settings
from bot.render.slack_runs import render_home
from handlers.slack.context import CommandContext
from handlers.slack.status import load_lines
from storage import slack as slack_store


def load_home(session: Session, *, settings: Settings, team_id: str) -> dict[str, Any]:
    """Build the Home tab view of a workspace."""
    subscriptions = slack_store.list_subscriptions(session=session, team_id=team_id)
    repos = sorted({subscription.repo for subscription in subscriptions})
    return render_home(load_lines(session, settings=settings, team_id=team_id, repos=repos))


async def publish_home(ctx: CommandContext) -> None:
    """Publish the Home tab for the user who opened it, through views.publish."""
    view = await ctx.read(load_home, settings=ctx.settings, team_id=ctx.team_id)
    if ctx.client is not None:
        await ctx.client.views_publish(user_id=ctx.user_id, view=view)
