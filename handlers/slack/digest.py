"""`/release digest`: schedule, show or stop a channel's daily or weekly summary of the
repositories it is subscribed to. The channel is the one named (`<#C0123|name>`, `<#C0123|>`,
`#name`) or the one the command was typed in."""

from __future__ import annotations

import logging

from sqlmodel import Session

from bot.render.slack import SlackMessage
from bot.render.slack_digest import render_schedule, render_scheduled, render_stopped
from handlers.slack.arguments import ArgumentError, ChannelArgument, parse_arguments, parse_channel
from handlers.slack.context import CommandContext
from handlers.slack.subscriptions import target_channel
from storage import digests
from storage.models_digest import DIGEST_FREQUENCIES

logger = logging.getLogger(__name__)

USAGE = "/release digest [daily | weekly | off] [#channel]"
SUMMARY = (
    "Post a daily or weekly summary of a channel's repositories there (default: this channel): "
    "runs, failure rate, build times, slowest jobs, incidents and flaky failures. "
    "`off` stops it; no argument shows the schedule."
)
OFF = "off"


def split_action_and_channel(words: list[str]) -> tuple[str | None, ChannelArgument | None]:
    """Return the action (daily, weekly, off or None to show) and the channel, or raise ArgumentError."""
    action: str | None = None
    channel: ChannelArgument | None = None
    for word in words:
        parsed = parse_channel(word)
        if parsed is not None and channel is None:
            channel = parsed
        elif parsed is None and action is None and word.lower() in (*DIGEST_FREQUENCIES, OFF):
            action = word.lower()
        else:
            raise ArgumentError(
                f"unexpected argument {word!r}: give daily, weekly or off, and at most one #channel",
                usage=USAGE,
            )
    return action, channel


def current_frequency(session: Session, *, team_id: str, channel_id: str) -> str | None:
    """Return a channel's digest frequency, or None without a digest."""
    digest = digests.get_digest(session=session, team_id=team_id, channel_id=channel_id)
    return digest.frequency if digest is not None else None


def schedule(
    session: Session, *, team_id: str, channel_id: str, frequency: str, user_id: str
) -> str:
    """Store a channel's digest frequency; return `created`, `changed` or `unchanged`."""
    _, outcome = digests.set_digest(
        session=session,
        team_id=team_id,
        channel_id=channel_id,
        frequency=frequency,
        user_id=user_id,
    )
    return outcome


def stop(session: Session, *, team_id: str, channel_id: str) -> bool:
    """Delete a channel's digest; return whether there was one."""
    return digests.remove_digest(session=session, team_id=team_id, channel_id=channel_id)


async def run(ctx: CommandContext, words: list[str]) -> SlackMessage:
    """Respond to `/release digest`."""
    arguments = parse_arguments(words, options={}, usage=USAGE)
    action, channel = split_action_and_channel(arguments.words)
    channel_id = await target_channel(ctx, channel)
    digest_time = ctx.settings.digest_time_utc

    if action is None:
        frequency = await ctx.read(current_frequency, team_id=ctx.team_id, channel_id=channel_id)
        return render_schedule(channel_id, frequency, digest_time)
    if action == OFF:
        removed = await ctx.write(stop, team_id=ctx.team_id, channel_id=channel_id)
        logger.info(
            "digest stopped", extra=ctx.log_extra(target_channel=channel_id, removed=removed)
        )
        return render_stopped(channel_id, removed)

    outcome = await ctx.write(
        schedule, team_id=ctx.team_id, channel_id=channel_id, frequency=action, user_id=ctx.user_id
    )
    logger.info(
        "digest scheduled",
        extra=ctx.log_extra(target_channel=channel_id, frequency=action, outcome=outcome),
    )
    return render_scheduled(channel_id, action, outcome, digest_time)
