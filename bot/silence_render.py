"""Slack replies of `/release silence`, `/release silences` and `/release unsilence`, escaped and
sized through bot.render.slack."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.render.slack import (
    USER_ID,
    BlockBuilder,
    SlackMessage,
    count_of,
    format_duration,
    format_time,
    inline,
    link,
)

MAX_SILENCE_BLOCKS = 40


@dataclass
class SilenceRow:
    """One silence as listed to people; text is raw."""

    silence_id: int
    repo: str
    workflow: str
    branch: str
    created_by: str | None
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    suppressed_count: int
    last_suppressed_at: datetime | None = None
    last_run_url: str | None = None
    last_run_label: str | None = None


def describe_scope(repo: str, workflow: str, branch: str) -> str:
    """Describe what a silence covers in escaped mrkdwn."""
    parts = [f"*{inline(repo)}*"]
    parts.append(f"workflow {inline(workflow)}" if workflow else "every workflow")
    parts.append(f"branch {inline(branch)}" if branch else "every branch")
    return ", ".join(parts)


def who(user_id: str | None) -> str:
    """Mention the Slack user who made or ended a silence."""
    return f"<@{user_id}>" if user_id and USER_ID.match(user_id) else "someone"


def render_silenced(row: SilenceRow, duration_s: float) -> SlackMessage:
    """Confirm a new silence."""
    text = (
        f":mute: Silenced {describe_scope(row.repo, row.workflow, row.branch)} for {format_duration(duration_s)}, "
        f"until {format_time(row.expires_at)}. Failures are still recorded and counted in `/release silences`; "
        f"`/release unsilence {row.silence_id}` ends silence {row.silence_id} early."
    )
    builder = BlockBuilder()
    builder.section(text)
    return builder.build(f"Silenced {inline(row.repo)} until {format_time(row.expires_at)}")


def silence_line(row: SilenceRow, now: datetime) -> str:
    """Render one silence as a line: its scope, its window and the failures it held back."""
    if row.ended_at is not None:
        state = f"ended {format_time(row.ended_at)}"
    elif row.expires_at <= now:
        state = f"expired {format_time(row.expires_at)}"
    else:
        state = f"until {format_time(row.expires_at)} ({format_duration((row.expires_at - now).total_seconds())} left)"
    line = f"`{row.silence_id}` {describe_scope(row.repo, row.workflow, row.branch)} · {state} · by {who(row.created_by)}"
    held = f"held back {count_of(row.suppressed_count, 'failure')}"
    if row.suppressed_count and row.last_suppressed_at is not None:
        last = link(row.last_run_url, row.last_run_label or "a run")
        held += f", the last {last} at {format_time(row.last_suppressed_at)}"
    return f"{line}\n      {held}"


def render_silences(rows: Sequence[SilenceRow], now: datetime) -> SlackMessage:
    """List a workspace's active silences and those that ended in the last day."""
    active = sum(1 for row in rows if row.ended_at is None and row.expires_at > now)
    builder = BlockBuilder()
    builder.header(f"Silences ({active} active)")
    if not rows:
        builder.section(
            "No silences. Use `/release silence OWNER/NAME [WORKFLOW] [--branch B] 2h` to add one."
        )
        return builder.build("No silences.")
    builder.lines(
        [silence_line(row, now) for row in rows],
        max_blocks=MAX_SILENCE_BLOCKS,
        more=lambda count: f"and {count} more silences",
    )
    builder.context(["Silenced failures are recorded and counted here, but not posted."])
    return builder.build(f"{count_of(len(rows), 'silence')}, {active} active.")


def render_unsilenced(row: SilenceRow) -> SlackMessage:
    """Confirm that a silence was ended."""
    text = (
        f":loud_sound: Ended silence {row.silence_id} of {describe_scope(row.repo, row.workflow, row.branch)}; "
        f"it held back {count_of(row.suppressed_count, 'failure')}."
    )
    builder = BlockBuilder()
    builder.section(text)
    return builder.build(f"Ended silence {row.silence_id}.")
