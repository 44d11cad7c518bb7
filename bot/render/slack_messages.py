"""Slack messages for help, errors, notices, subscriptions and metric statistics."""

from __future__ import annotations

from collections.abc import Sequence

from bot.render.slack import (
    BlockBuilder,
    SlackMessage,
    button,
    channel_ref,
    count_of,
    escape,
    format_duration,
    format_percent,
    format_signed_duration,
    format_time,
    inline,
)
from bot.render.slack_views import StatsView, SubscriptionRow

POST_TO_CHANNEL_ACTION = "post_to_channel"
OUTCOMES = ("success", "failure", "skipped", "cancelled")
# Metrics whose values are durations in seconds; others are shown as plain numbers.
DURATION_METRICS = frozenset(
    {"build_time", "test_duration", "publish_time", "deployment_time", "queue_time"}
)


def share_button(command_text: str) -> dict[str, object] | None:
    """Build the "Post to channel" button, which runs the same command again for everyone."""
    return button("Post to channel", action_id=POST_TO_CHANNEL_ACTION, value=command_text)


def finish(builder: BlockBuilder, fallback: str, share: str | None) -> SlackMessage:
    """Add the "Post to channel" button when `share` contains the command text, and build."""
    if share is not None:
        builder.actions([share_button(share)])
    return builder.build(fallback)


def render_help(commands: Sequence[tuple[str, str]]) -> SlackMessage:
    """List the commands, each as its usage line and what it does."""
    builder = BlockBuilder()
    builder.header("release-bot commands")
    builder.lines([f"`{escape(usage)}`\n{escape(summary)}" for usage, summary in commands])
    builder.context(
        [
            (
                "Answers are shown only to you; press *Post to channel* under one to share it. "
                "Repositories can be given by name alone when no other followed repository shares it."
            )
        ]
    )
    return builder.build(
        "release-bot commands: " + ", ".join(escape(usage) for usage, _ in commands)
    )


def render_error(message: str, *, usage: str | None = None) -> SlackMessage:
    """Show an error about the command; every character of `message` is shown literally."""
    builder = BlockBuilder()
    builder.section(f":warning: {escape(message)}")
    if usage:
        builder.context([f"Usage: `{escape(usage)}`"])
    return builder.build(escape(message))


def render_notice(message: str) -> SlackMessage:
    """Show a short notice; every character of `message` is shown literally."""
    builder = BlockBuilder()
    builder.section(f":information_source: {escape(message)}")
    return builder.build(escape(message))


def describe_filters(events: str, branch: str, workflow: str) -> str:
    """Describe a subscription's events and filters in escaped mrkdwn."""
    parts = [f"events: {escape(events)}"]
    if branch:
        parts.append(f"branch {inline(branch)}")
    if workflow:
        parts.append(f"workflow {inline(workflow)}")
    return ", ".join(parts)


def render_subscribed(row: SubscriptionRow, outcome: str, *, linked_now: bool) -> SlackMessage:
    """Confirm a subscription: `created`, `updated` (new events) or `exists` (already subscribed)."""
    channel = channel_ref(row.channel_id)
    repo = inline(row.repo)
    filters = describe_filters(row.events, row.branch, row.workflow)
    if outcome == "exists":
        text = f":ballot_box_with_check: {channel} is already subscribed to *{repo}* ({filters})."
    elif outcome == "updated":
        text = f":white_check_mark: Updated the subscription of {channel} to *{repo}* ({filters})."
    else:
        text = f":white_check_mark: Subscribed {channel} to *{repo}* ({filters})."
    builder = BlockBuilder()
    builder.section(text)
    if linked_now:
        builder.context(
            [
                "This workspace can now see the repositories of the GitHub App installation that owns it."
            ]
        )
    return builder.build(text)


def render_unsubscribed(channel_id: str, repo: str, removed: int) -> SlackMessage:
    """Confirm an unsubscribe, or report that there was nothing to remove."""
    channel = channel_ref(channel_id)
    if removed:
        noun = "subscription" if removed == 1 else "subscriptions"
        text = f":white_check_mark: Removed {removed} {noun} of {channel} to *{inline(repo)}*."
    else:
        text = f":information_source: {channel} is not subscribed to *{inline(repo)}*."
    builder = BlockBuilder()
    builder.section(text)
    return builder.build(text)


def render_subscriptions(rows: Sequence[SubscriptionRow], *, scope: str) -> SlackMessage:
    """List subscriptions, one line each; `scope` names what was listed (this channel, this workspace)."""
    builder = BlockBuilder()
    builder.header(f"Subscriptions in {scope} ({len(rows)})")
    if not rows:
        builder.section(
            "No subscriptions yet. Use `/release subscribe OWNER/NAME [#channel]` to add one."
        )
        return builder.build(f"No subscriptions in {escape(scope)}.")
    lines = [
        f"{channel_ref(row.channel_id)} · *{inline(row.repo)}* · "
        f"{describe_filters(row.events, row.branch, row.workflow)}"
        + (
            f"\n      :double_vertical_bar: alerts paused: {escape(row.paused)}"
            if row.paused
            else ""
        )
        for row in rows
    ]
    builder.lines(lines, more=lambda count: f"and {count} more subscriptions")
    return builder.build(f"{count_of(len(rows), 'subscription')} in {escape(scope)}.")


def format_value(metric: str, value: float | None) -> str:
    """Format a statistic as a duration for time metrics, else as a number."""
    if value is None:
        return "-"
    if metric in DURATION_METRICS:
        return format_duration(float(value))
    return f"{float(value):.2f}"


def describe_change(view: StatsView) -> str:
    """Describe the change of mean and count against the previous window of the same length."""
    mean, previous_mean = view.current.get("mean"), view.previous.get("mean")
    count, previous_count = (
        int(view.current.get("count") or 0),
        int(view.previous.get("count") or 0),
    )
    if mean is None or previous_mean is None:
        mean_text = "mean: no data in the previous window"
    elif view.metric in DURATION_METRICS:
        delta = float(mean) - float(previous_mean)
        relative = f" ({delta / float(previous_mean) * 100:+.1f}%)" if previous_mean else ""
        mean_text = f"mean {format_signed_duration(delta)}{relative}"
    else:
        mean_text = f"mean {float(mean) - float(previous_mean):+.2f}"
    return f"{mean_text}, count {count - previous_count:+d} ({previous_count} before)"


def format_outcomes(outcomes: dict[str, int]) -> str:
    """Format conclusion counts as `success 2 · failure 1 · skipped 0 · cancelled 1`."""
    return " · ".join(f"{name} {outcomes.get(name, 0)}" for name in OUTCOMES)


def render_stats(view: StatsView, *, share: str | None) -> SlackMessage:
    """Show count, mean, percentiles, failure rate, the trend and run and outcome counts."""
    scope = view.repo or "all repositories"
    builder = BlockBuilder()
    builder.header(f"{view.metric} · {scope}")
    filters = [f"from {format_time(view.since)} to {format_time(view.until)}"]
    if view.workflow:
        filters.append(f"workflow {inline(view.workflow)}")
    if view.branch:
        filters.append(f"branch {inline(view.branch)}")
    builder.context([" · ".join(filters)])

    stats = view.current
    if not stats.get("count"):
        builder.section(f"No `{escape(view.metric)}` points in this window.")
    else:
        builder.fields(
            [
                f"*Count*\n{stats.get('count')}",
                f"*Mean*\n{format_value(view.metric, stats.get('mean'))}",
                f"*p50*\n{format_value(view.metric, stats.get('p50'))}",
                f"*p95*\n{format_value(view.metric, stats.get('p95'))}",
                f"*Min*\n{format_value(view.metric, stats.get('min'))}",
                f"*Max*\n{format_value(view.metric, stats.get('max'))}",
                f"*Failure rate*\n{format_percent(view.failure_rate)}",
                f"*Change against the previous window*\n{describe_change(view)}",
            ]
        )
        bucket = format_duration(view.bucket_seconds)
        builder.section(f"*Trend* (mean per {bucket})\n`{view.sparkline}`")

    builder.fields(
        [
            f"*Runs*\n{count_of(view.runs, 'run')}, {count_of(view.reruns, 're-run')}",
            f"*Attempt outcomes*\n{format_outcomes(view.outcomes)}",
            f"*Latest outcome per run*\n{format_outcomes(view.latest_outcomes)}",
            f"*Job outcomes*\n{format_outcomes(view.job_outcomes)}",
            f"*Flaky failures*\n{view.flaky_failures}",
        ]
    )
    fallback = (
        f"{escape(view.metric)} for {inline(scope)}: {stats.get('count') or 0} points, "
        f"mean {format_value(view.metric, stats.get('mean'))}, "
        f"p95 {format_value(view.metric, stats.get('p95'))}"
    )
    return finish(builder, fallback, share)
