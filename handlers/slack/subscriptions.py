"""`/release subscribe`, `unsubscribe` and `subscriptions`: which channels follow which repositories.

Channels arrive as Slack references (`<#C0123|name>`, `<#C0123|>`), as `#name` (looked up
with conversations.list), or not at all (the channel the command was typed in). Only the
bare channel id is stored.
"""

from __future__ import annotations

import logging

from sqlmodel import Session

from bot.config import Settings
from bot.render.slack import SlackMessage
from bot.render.slack_messages import render_subscribed, render_subscriptions, render_unsubscribed
from bot.render.slack_views import SubscriptionRow
from handlers.slack.access import link_for_subscription, resolve_repository
from handlers.slack.arguments import ArgumentError, ChannelArgument, parse_arguments, parse_channel
from handlers.slack.context import CommandContext
from storage import alert_rules
from storage import slack as slack_store
from storage.models_slack import SUBSCRIPTION_EVENTS

logger = logging.getLogger(__name__)

SUBSCRIBE_USAGE = (
    "/release subscribe OWNER/NAME [#channel] [--events failures,publishes,deployments,all] "
    "[--branch B] [--workflow W]"
)
UNSUBSCRIBE_USAGE = "/release unsubscribe OWNER/NAME [#channel] [--branch B] [--workflow W]"
LIST_USAGE = "/release subscriptions [#channel | all]"
SUBSCRIBE_OPTIONS = {
    "events": "a comma-separated list of failures, publishes, deployments or all",
    "branch": "a branch name, such as main",
    "workflow": "a workflow name, such as CI",
}
FILTER_OPTIONS = {key: value for key, value in SUBSCRIBE_OPTIONS.items() if key != "events"}
# conversations.list pages read when resolving `#name`: 200 channels each.
CHANNEL_PAGES = 25


def parse_events(text: str) -> str:
    """Normalise an --events value to `all` or a sorted comma-separated list, or raise ArgumentError."""
    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(SUBSCRIPTION_EVENTS) - {"all"})
    if unknown or not names:
        accepted = ", ".join((*SUBSCRIPTION_EVENTS, "all"))
        raise ArgumentError(
            f"invalid --events {text!r}: use a comma-separated list of {accepted}",
            usage=SUBSCRIBE_USAGE,
        )
    if "all" in names or names == set(SUBSCRIPTION_EVENTS):
        return "all"
    return ",".join(name for name in SUBSCRIPTION_EVENTS if name in names)


async def find_channel_id(ctx: CommandContext, name: str) -> str:
    """Look up a channel id by name with conversations.list, or raise ArgumentError."""
    hint = "pick the channel from Slack's autocomplete (type # and choose it)"
    if ctx.client is None:
        raise ArgumentError(f"cannot look up #{name}: {hint}", usage=SUBSCRIBE_USAGE)
    # A client exists only once the Slack app is built, so slack_sdk is loaded by then.
    from slack_sdk.errors import SlackApiError

    cursor: str | None = None
    try:
        for _ in range(CHANNEL_PAGES):
            response = await ctx.client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=200,
                cursor=cursor,
            )
            for channel in response.get("channels") or []:
                if channel.get("name") == name and isinstance(channel.get("id"), str):
                    return channel["id"]
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
    except SlackApiError as exc:
        code = exc.response.get("error") if exc.response is not None else "unknown_error"
        logger.warning("conversations.list failed: %s", code, extra=ctx.log_extra())
        raise ArgumentError(
            f"could not look up #{name} (Slack returned {code}): {hint}", usage=SUBSCRIBE_USAGE
        ) from None
    raise ArgumentError(
        f"no channel named #{name} is visible to release-bot: {hint}, or invite the bot to it first",
        usage=SUBSCRIBE_USAGE,
    )


async def target_channel(ctx: CommandContext, channel: ChannelArgument | None) -> str:
    """Return the id of the named channel, or of the channel the command was typed in."""
    if channel is None:
        return ctx.channel_id
    if channel.channel_id is not None:
        return channel.channel_id
    return await find_channel_id(ctx, channel.name or "")


def split_repo_and_channel(words: list[str], *, usage: str) -> tuple[str, ChannelArgument | None]:
    """Return the repository word and the channel, or raise ArgumentError."""
    repo_word: str | None = None
    channel: ChannelArgument | None = None
    for word in words:
        parsed = parse_channel(word)
        if parsed is not None and channel is None:
            channel = parsed
        elif parsed is None and repo_word is None:
            repo_word = word
        else:
            raise ArgumentError(
                f"unexpected argument {word!r}: give one OWNER/NAME and at most one #channel",
                usage=usage,
            )
    if repo_word is None:
        raise ArgumentError(
            "missing repository: give it as OWNER/NAME, such as octo-org/widget", usage=usage
        )
    return repo_word, channel


def subscribe(
    session: Session,
    *,
    settings: Settings,
    team_id: str,
    user_id: str,
    channel_id: str,
    repo_word: str,
    events: str,
    branch: str,
    workflow: str,
) -> tuple[SubscriptionRow, str, bool]:
    """Link the workspace if needed and store the subscription; return it, its outcome and whether a link was made."""
    repo = resolve_repository(session, settings, team_id, repo_word, usage=SUBSCRIBE_USAGE)
    repository, linked_now = link_for_subscription(session, settings, team_id, user_id, repo)
    subscription, outcome = slack_store.add_subscription(
        session=session,
        team_id=team_id,
        channel_id=channel_id,
        repo=repository.full_name,
        installation_id=repository.installation_id,
        events=events,
        branch=branch,
        workflow=workflow,
        created_by=user_id,
    )
    alert_rules.resume_subscription(session=session, subscription_id=subscription.id or 0)
    row = SubscriptionRow(
        channel_id=subscription.channel_id,
        repo=subscription.repo,
        events=subscription.events,
        branch=subscription.branch,
        workflow=subscription.workflow,
    )
    return row, outcome, linked_now


async def run_subscribe(ctx: CommandContext, words: list[str]) -> SlackMessage:
    """Respond to `/release subscribe`."""
    arguments = parse_arguments(words, options=SUBSCRIBE_OPTIONS, usage=SUBSCRIBE_USAGE)
    repo_word, channel = split_repo_and_channel(arguments.words, usage=SUBSCRIBE_USAGE)
    events = parse_events(arguments.options.get("events", "all"))
    channel_id = await target_channel(ctx, channel)
    row, outcome, linked_now = await ctx.write(
        subscribe,
        settings=ctx.settings,
        team_id=ctx.team_id,
        user_id=ctx.user_id,
        channel_id=channel_id,
        repo_word=repo_word,
        events=events,
        branch=arguments.options.get("branch", ""),
        workflow=arguments.options.get("workflow", ""),
    )
    logger.info(
        "slack subscription %s",
        outcome,
        extra=ctx.log_extra(repo=row.repo, target_channel=channel_id),
    )
    return render_subscribed(row, outcome, linked_now=linked_now)


def unsubscribe(
    session: Session,
    *,
    settings: Settings,
    team_id: str,
    channel_id: str,
    repo_word: str,
    branch: str | None,
    workflow: str | None,
) -> tuple[str, int]:
    """Delete matching subscriptions; return the repository and how many were removed."""
    repo = resolve_repository(session, settings, team_id, repo_word, usage=UNSUBSCRIBE_USAGE)
    removed = slack_store.remove_subscriptions(
        session=session,
        team_id=team_id,
        channel_id=channel_id,
        repo=repo,
        branch=branch,
        workflow=workflow,
    )
    return repo, removed


async def run_unsubscribe(ctx: CommandContext, words: list[str]) -> SlackMessage:
    """Respond to `/release unsubscribe`."""
    arguments = parse_arguments(words, options=FILTER_OPTIONS, usage=UNSUBSCRIBE_USAGE)
    repo_word, channel = split_repo_and_channel(arguments.words, usage=UNSUBSCRIBE_USAGE)
    channel_id = await target_channel(ctx, channel)
    repo, removed = await ctx.write(
        unsubscribe,
        settings=ctx.settings,
        team_id=ctx.team_id,
        channel_id=channel_id,
        repo_word=repo_word,
        branch=arguments.options.get("branch"),
        workflow=arguments.options.get("workflow"),
    )
    logger.info(
        "slack subscriptions removed",
        extra=ctx.log_extra(repo=repo, target_channel=channel_id, removed=removed),
    )
    return render_unsubscribed(channel_id, repo, removed)


def list_rows(session: Session, *, team_id: str, channel_id: str | None) -> list[SubscriptionRow]:
    """Return the subscriptions of a channel, or of the whole workspace when `channel_id` is None."""
    subscriptions = slack_store.list_subscriptions(
        session=session, team_id=team_id, channel_id=channel_id
    )
    pauses = alert_rules.paused_subscriptions(
        session=session, subscription_ids=[row.id or 0 for row in subscriptions]
    )
    return [
        SubscriptionRow(
            channel_id=row.channel_id,
            repo=row.repo,
            events=row.events,
            branch=row.branch,
            workflow=row.workflow,
            paused=alert_rules.pause_note(pauses[row.id]) if row.id in pauses else None,
        )
        for row in subscriptions
    ]


async def run_list(ctx: CommandContext, words: list[str]) -> SlackMessage:
    """Respond to `/release subscriptions`."""
    arguments = parse_arguments(words, options={}, usage=LIST_USAGE)
    if len(arguments.words) > 1:
        raise ArgumentError(
            f"unexpected arguments {' '.join(arguments.words[1:])!r}", usage=LIST_USAGE
        )
    word = arguments.words[0] if arguments.words else None
    if word is not None and word.lower() == "all":
        rows = await ctx.read(list_rows, team_id=ctx.team_id, channel_id=None)
        return render_subscriptions(rows, scope="this workspace")

    channel = parse_channel(word) if word is not None else None
    if word is not None and channel is None:
        raise ArgumentError(f"invalid channel {word!r}: use #channel or all", usage=LIST_USAGE)
    channel_id = await target_channel(ctx, channel)
    rows = await ctx.read(list_rows, team_id=ctx.team_id, channel_id=channel_id)
    scope = (
        "this channel"
        if channel_id == ctx.channel_id
        else f"#{channel.name}"
        if channel and channel.name
        else "that channel"
    )
    return render_subscriptions(rows, scope=scope)
