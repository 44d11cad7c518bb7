"""Slack messages of channel digests: the daily or weekly summary, and the responses of
`/release digest`. Repository, workflow and job names are escaped here; a digest that
follows many repositories ends with "and N more repositories" to stay within Slack's limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.render.slack import (
    BlockBuilder,
    SlackMessage,
    channel_ref,
    count_of,
    escape,
    format_duration,
    format_percent,
    format_signed_duration,
    format_time,
    inline,
    link,
    url_segment,
)
from storage.digests import RepoFigures

GITHUB = "https://github.com"
PERIOD_NOUNS = {"daily": "day", "weekly": "week"}


@dataclass
class DigestView:
    """One channel's digest: its frequency, the window it covers and each followed repository's figures."""

    frequency: str
    since: datetime
    until: datetime
    repos: list[RepoFigures]
    # Followed repositories beyond those gathered, shown only in the "and N more" line.
    more_repos: int = 0


def describe_trend(current: float | None, previous: float | None, noun: str) -> str:
    """Describe a build time and its change against the previous period."""
    if current is None:
        return "-"
    if previous is None:
        return f"{format_duration(current)} (no data the previous {noun})"
    return f"{format_duration(current)} ({format_signed_duration(current - previous)} against the previous {noun})"


def repo_entry(figures: RepoFigures, noun: str) -> str:
    """Return the escaped mrkdwn lines of one repository."""
    lines = [f"*{link(f'{GITHUB}/{url_segment(figures.repo)}', figures.repo)}*"]
    if figures.runs:
        current, previous = figures.build_time, figures.previous_build_time
        lines.append(
            f"{count_of(figures.runs, 'run')} · failure rate {format_percent(figures.failure_rate)} · "
            f"p50 {describe_trend(current.get('p50'), previous.get('p50'), noun)} · "
            f"p95 {describe_trend(current.get('p95'), previous.get('p95'), noun)}"
        )
    else:
        lines.append(f"No completed runs this {noun}.")
    if figures.slowest_jobs:
        jobs = " · ".join(
            f"{inline(job.workflow)} / {inline(job.name)} {format_duration(job.duration_s)}"
            if job.workflow
            else f"{inline(job.name)} {format_duration(job.duration_s)}"
            for job in figures.slowest_jobs
        )
        lines.append(f"Slowest jobs: {jobs}")
    lines.append(
        f"Incidents: {figures.incidents_opened} opened, {figures.incidents_resolved} resolved · "
        f"flaky failures: {figures.flaky_failures}"
    )
    return "\n".join(lines)


def period_label(view: DigestView) -> str:
    """Return the days a digest covers, such as `2024-06-02` or `2024-05-27 to 2024-06-02`."""
    first = view.since.date().isoformat()
    last = (view.until - timedelta(seconds=1)).date().isoformat()
    return first if first == last else f"{first} to {last}"


def render_digest(view: DigestView) -> SlackMessage:
    """Build a channel's digest message."""
    noun = PERIOD_NOUNS.get(view.frequency, "period")
    title = f"{view.frequency.capitalize()} digest · {period_label(view)}"
    builder = BlockBuilder()
    builder.header(title)
    followed = count_of(len(view.repos) + view.more_repos, "repository", "repositories")
    builder.context(
        [
            f"From {format_time(view.since)} to {format_time(view.until)} · {followed} followed by this channel"
        ]
    )
    entries = [repo_entry(figures, noun) + "\n" for figures in view.repos]
    shown_count = builder.lines(entries, more=lambda count: more_line(count + view.more_repos))
    if view.more_repos and shown_count == len(entries):
        builder.section(f"_{escape(more_line(view.more_repos))}_")
    return builder.build(escape(title))


def more_line(count: int) -> str:
    """Return the line that stands for repositories left out of a digest."""
    return f"and {count} more {'repository' if count == 1 else 'repositories'}"


def render_schedule(channel_id: str, frequency: str | None, digest_time: str) -> SlackMessage:
    """Describe a channel's digest schedule."""
    builder = BlockBuilder()
    if frequency is None:
        text = (
            f"{channel_ref(channel_id)} gets no digest. "
            "`/release digest daily` or `/release digest weekly` schedules one."
        )
    else:
        text = f"{channel_ref(channel_id)} gets a {escape(frequency)} digest {when(frequency, digest_time)}."
    builder.section(text)
    return builder.build(text)


def when(frequency: str, digest_time: str) -> str:
    """Return when a digest of a frequency is posted, such as `on Mondays at 09:00 UTC`."""
    day = "on Mondays" if frequency == "weekly" else "every day"
    return f"{day} at {escape(digest_time)} UTC"


def render_scheduled(
    channel_id: str, frequency: str, outcome: str, digest_time: str
) -> SlackMessage:
    """Confirm that a channel's digest was scheduled or changed."""
    verb = "still gets" if outcome == "unchanged" else "will get"
    text = (
        f":spiral_calendar_pad: {channel_ref(channel_id)} {verb} a {escape(frequency)} digest "
        f"{when(frequency, digest_time)}, covering the repositories it is subscribed to."
    )
    builder = BlockBuilder()
    builder.section(text)
    return builder.build(text)


def render_stopped(channel_id: str, removed: bool) -> SlackMessage:
    """Confirm that a channel's digest was turned off, or report that it had none."""
    text = (
        f"{channel_ref(channel_id)} gets no more digests."
        if removed
        else f"{channel_ref(channel_id)} had no digest scheduled."
    )
    builder = BlockBuilder()
    builder.section(text)
    return builder.build(text)
