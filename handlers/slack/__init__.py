"""Slack `/release` commands, one module per command group, composed in one list; and the
reactions of the Slack side to processed webhook deliveries."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError

from bot.render.slack import SlackMessage
from bot.render.slack_messages import render_error, render_help, render_notice
from handlers.github.context import HandlerContext
from handlers.github.reactions import alerts, stuck_runs
from handlers.slack import digest, live_status, profile, silences, stats, status, subscriptions
from handlers.slack.access import Refusal
from handlers.slack.arguments import ArgumentError, split_words
from handlers.slack.context import CommandContext

logger = logging.getLogger(__name__)

HELP_USAGE = "/release help"


@dataclass(frozen=True)
class Command:
    """A `/release` subcommand: its name, usage line, one-sentence summary and handler."""

    name: str
    usage: str
    summary: str
    run: Callable[[CommandContext, list[str]], Awaitable[SlackMessage]]


COMMANDS: tuple[Command, ...] = (
    Command("status", status.USAGE, status.SUMMARY, status.run),
    Command("stats", stats.USAGE, stats.SUMMARY, stats.run),
    Command("profile", profile.USAGE, profile.SUMMARY, profile.run),
    Command(
        "subscribe",
        subscriptions.SUBSCRIBE_USAGE,
        "Post a repository's failures, publishes and deployments to a channel (default: this channel, "
        "all events). Release runs get a live status message there.",
        subscriptions.run_subscribe,
    ),
    Command(
        "unsubscribe",
        subscriptions.UNSUBSCRIBE_USAGE,
        "Stop posting a repository to a channel.",
        subscriptions.run_unsubscribe,
    ),
    Command(
        "subscriptions",
        subscriptions.LIST_USAGE,
        "List the subscriptions of a channel (default: this one), or of the whole workspace.",
        subscriptions.run_list,
    ),
    *(Command(*entry) for entry in silences.COMMAND_ENTRIES),
    Command("digest", digest.USAGE, digest.SUMMARY, digest.run),
)
COMMANDS_BY_NAME = {command.name: command for command in COMMANDS}
USAGE_LINE = "/release " + " | ".join(("help", *COMMANDS_BY_NAME))

@dataclass(frozen=True)
class Reaction:
    """A reaction to processed deliveries, and the test of whether a delivery concerns it."""

    run: Callable[[HandlerContext, dict[str, Any]], Any]
    wants: Callable[[HandlerContext], bool]


# Reactions run after a delivery's handler, in its transaction; see react_to_delivery.
REACTIONS: tuple[Reaction, ...] = (
    Reaction(live_status.react, live_status.wants),
    Reaction(alerts.react, alerts.wants),
    Reaction(stuck_runs.react, stuck_runs.wants),
)


def render_command_help() -> SlackMessage:
    """List every command."""
    entries = [(HELP_USAGE, "List the commands.")]
    entries += [(command.usage, command.summary) for command in COMMANDS]
    return render_help(entries)


async def dispatch(ctx: CommandContext, text: str) -> SlackMessage:
    """Run the command in `text` and return its response. Argument errors become ephemeral errors."""
    try:
        words = split_words(text)
        if not words or words[0].lower() == "help":
            return render_command_help()
        command = COMMANDS_BY_NAME.get(words[0].lower())
        if command is None:
            logger.info("unknown slack command", extra=ctx.log_extra(command=words[0][:40]))
            return render_error(f"unknown command {words[0]!r}.", usage=USAGE_LINE)
        return await command.run(ctx, words[1:])
    except ArgumentError as exc:
        logger.warning("slack command rejected: %s", exc, extra=ctx.log_extra())
        return render_error(str(exc), usage=exc.usage)
    except Refusal as refusal:
        logger.info("slack command not allowed: %s", refusal.summary, extra=ctx.log_extra())
        return render_notice(str(refusal))


def react_to_delivery(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Run the reactions that concern a processed delivery, each in its own savepoint.

    A failing reaction is logged and rolled back alone: the facts of the delivery stay stored.
    A database error is not a reaction's fault and goes up to the worker. That includes an
    IntegrityError from another replica inserting the same row, after which the worker
    processes the delivery once more.
    """
    for reaction in REACTIONS:
        if not reaction.wants(ctx):
            continue
        savepoint = ctx.session.begin_nested()
        try:
            reaction.run(ctx, payload)
            ctx.session.flush()
            savepoint.commit()
        except (OperationalError, IntegrityError):
            savepoint.rollback()
            raise
        except Exception:  # noqa: BLE001 - a failing reaction must not lose the delivery's facts
            savepoint.rollback()
            logger.exception("reaction failed", extra=ctx.log_extra(reaction=reaction.run.__module__))
