"""`/release stats [METRIC] [OWNER/NAME] [--workflow W] [--branch B] [--since 30d]`: statistics of a
metric over a window, compared with the window of the same length before it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.config import Settings
from bot.periods import parse_since
from bot.render.slack import SlackMessage
from bot.render.slack_messages import render_stats
from bot.render.slack_views import StatsView
from handlers.slack.access import check_access, resolve_repository, visible_repositories
from handlers.slack.arguments import ArgumentError, is_repository_word, parse_arguments
from handlers.slack.context import CommandContext
from storage import incidents, metrics, slack_queries
from storage import slack as slack_store
from storage.models import MetricType
from storage.slack_queries import AttemptRow
from storage.types import utc_now

NAMES = ("stats",)
USAGE = "/release stats [METRIC] [OWNER/NAME] [--workflow W] [--branch B] [--since 30d]"
SUMMARY = (
    "Count, mean, p50, p95, min, max and failure rate of a metric (default build_time), the change "
    "against the previous window, a trend line, runs and re-runs, attempt, latest-run and job "
    "outcomes, and flaky failures."
)
METRICS = tuple(member.value for member in MetricType if member is not MetricType.CUSTOM)
OPTIONS = {
    "workflow": "a workflow name, such as CI",
    "branch": "a branch name, such as main",
    "since": "a window such as 30d, 12h or 2w, or an ISO 8601 time",
    "days": "a whole number of days, such as 90",
}
DEFAULT_WINDOW = "30d"
MAX_DAYS = 3650
SPARK_BUCKETS = 20
SPARK_LEVELS = "▁▂▃▄▅▆▇█"
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})


@dataclass(frozen=True)
class StatsRequest:
    """A parsed stats command; `repo_word` is still to be resolved against the workspace."""

    metric: str
    repo_word: str | None
    workflow: str | None
    branch: str | None
    since_text: str


def parse_request(words: list[str]) -> StatsRequest:
    """Parse the command's words, or raise ArgumentError naming the bad one."""
    arguments = parse_arguments(words, options=OPTIONS, usage=USAGE)
    metric: str | None = None
    repo_word: str | None = None
    for word in arguments.words:
        if metric is None and word.lower() in METRICS:
            metric = word.lower()
        elif repo_word is None:
            repo_word = word
        elif not is_repository_word(repo_word) and metric is None:
            # Two words that are not metrics: the first was meant as one.
            raise ArgumentError(
                f"unknown metric {repo_word!r}: use one of {', '.join(METRICS)}", usage=USAGE
            )
        else:
            raise ArgumentError(
                f"unexpected argument {word!r}: give at most METRIC and OWNER/NAME", usage=USAGE
            )

    since_text = arguments.options.get("since", DEFAULT_WINDOW)
    if "days" in arguments.options:
        if "since" in arguments.options:
            raise ArgumentError("give either --since or --days, not both", usage=USAGE)
        days = arguments.options["days"]
        if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
            raise ArgumentError(
                f"invalid --days {days!r}: use a whole number from 1 to {MAX_DAYS}", usage=USAGE
            )
        since_text = f"{int(days)}d"
    try:
        parse_since(since_text)
    except ValueError as exc:
        raise ArgumentError(f"invalid --since: {exc}", usage=USAGE) from None
    return StatsRequest(
        metric=metric or MetricType.BUILD_TIME.value,
        repo_word=repo_word,
        workflow=arguments.options.get("workflow"),
        branch=arguments.options.get("branch"),
        since_text=since_text,
    )


def resolve_stats_repository(
    session: Session, settings: Settings, team_id: str, channel_id: str, request: StatsRequest
) -> str:
    """Return the repository to compute statistics for, checking the workspace may see it.

    NOTE: statistics cover one repository at a time, because metric filters match one tag
    value. Without a repository, the one the channel follows (or the workspace sees) is used.
    """
    if request.repo_word is not None:
        try:
            repo = resolve_repository(session, settings, team_id, request.repo_word, usage=USAGE)
        except ArgumentError:
            if is_repository_word(request.repo_word):
                raise
            raise ArgumentError(
                f"unknown metric or repository {request.repo_word!r}: metrics are {', '.join(METRICS)}; "
                "give a repository as OWNER/NAME",
                usage=USAGE,
            ) from None
    else:
        followed = {
            row.repo
            for row in slack_store.list_subscriptions(
                session=session, team_id=team_id, channel_id=channel_id
            )
        }
        candidates = (
            sorted(followed) if followed else visible_repositories(session, settings, team_id)
        )
        if not candidates:
            raise ArgumentError(
                "give a repository as OWNER/NAME: none is linked to this workspace yet", usage=USAGE
            )
        if len(candidates) > 1:
            shown = ", ".join(candidates[:5]) + (", ..." if len(candidates) > 5 else "")
            raise ArgumentError(
                f"give a repository as OWNER/NAME, such as one of {shown}", usage=USAGE
            )
        repo = candidates[0]
    check_access(session, settings, team_id, repo)
    return repo


def sparkline(
    points: list[tuple[datetime, float]], since: datetime, until: datetime, buckets: int
) -> str:
    """Draw the mean of each of `buckets` equal slices of the window; a slice without points is a space."""
    width = (until - since) / buckets
    sums = [0.0] * buckets
    counts = [0] * buckets
    for timestamp, value in points:
        index = min(buckets - 1, max(0, int((timestamp - since) / width)))
        sums[index] += value
        counts[index] += 1
    means = [total / count if count else None for total, count in zip(sums, counts, strict=True)]
    present = [mean for mean in means if mean is not None]
    if not present:
        return " " * buckets
    low, high = min(present), max(present)
    span = high - low
    levels = len(SPARK_LEVELS) - 1
    return "".join(
        " "
        if mean is None
        else SPARK_LEVELS[round((mean - low) / span * levels) if span else levels // 2]
        for mean in means
    )


def fold_failures(outcomes: Counter[str]) -> dict[str, int]:
    """Return conclusion counts with every failing conclusion (failure, timed_out, startup_failure) summed under "failure"."""
    folded = {name: count for name, count in outcomes.items() if name not in FAILED_CONCLUSIONS}
    folded["failure"] = sum(
        count for name, count in outcomes.items() if name in FAILED_CONCLUSIONS
    )
    return folded


def load_stats(
    session: Session, *, settings: Settings, team_id: str, channel_id: str, request: StatsRequest
) -> StatsView:
    """Compute the statistics view; raise ArgumentError or Refusal for a bad or hidden repository."""
    repo = resolve_stats_repository(session, settings, team_id, channel_id, request)
    until = utc_now()
    since = parse_since(request.since_text, now=until)
    length = max(until - since, timedelta(seconds=1))
    tags = {"repo": repo}
    if request.workflow:
        tags["workflow"] = request.workflow
    if request.branch:
        tags["branch"] = request.branch

    current_filter = metrics.MetricFilter(
        metric_type=request.metric, tags=tags, since=since, until=until
    )
    previous_filter = metrics.MetricFilter(
        metric_type=request.metric, tags=tags, since=since - length, until=since
    )
    current = metrics.calculate_statistics(session=session, metric_filter=current_filter)
    previous = metrics.calculate_statistics(session=session, metric_filter=previous_filter)
    points = slack_queries.list_metric_points(session=session, metric_filter=current_filter)

    attempts = slack_queries.list_completed_attempts(
        session=session,
        repo=repo,
        workflow=request.workflow,
        branch=request.branch,
        since=since,
        until=until,
    )
    outcomes = fold_failures(Counter(attempt.conclusion or "unknown" for attempt in attempts))
    failed = outcomes["failure"]
    decided = failed + outcomes.get("success", 0)
    latest: dict[int, AttemptRow] = {}
    for attempt in attempts:
        if attempt.run_id not in latest or attempt.attempt > latest[attempt.run_id].attempt:
            latest[attempt.run_id] = attempt
    latest_outcomes = fold_failures(
        Counter(attempt.conclusion or "unknown" for attempt in latest.values())
    )
    job_outcomes = slack_queries.count_job_outcomes(
        session=session,
        repo=repo,
        workflow=request.workflow,
        branch=request.branch,
        since=since,
        until=until,
    )
    # NOTE: the flaky flag is set by the alert reaction, which records a failure only when a
    # channel subscription or alert rule receives it, or when it is a release failure. Failures
    # of a repository no channel follows are therefore not counted here.
    flaky = incidents.count_flaky_failures(
        session=session,
        repo=repo,
        workflow=request.workflow,
        branch=request.branch,
        since=since,
        until=until,
    )
    return StatsView(
        metric=request.metric,
        repo=repo,
        workflow=request.workflow,
        branch=request.branch,
        since=since,
        until=until,
        current=current,
        previous=previous,
        # Skipped and cancelled attempts neither passed nor failed, so they are left out of the rate.
        failure_rate=failed / decided if decided else None,
        runs=len({attempt.run_id for attempt in attempts}),
        reruns=sum(1 for attempt in attempts if attempt.attempt > 1),
        outcomes=outcomes,
        latest_outcomes=latest_outcomes,
        job_outcomes=fold_failures(Counter(job_outcomes)),
        flaky_failures=flaky,
        sparkline=sparkline(points, since, until, SPARK_BUCKETS),
        bucket_seconds=length.total_seconds() / SPARK_BUCKETS,
    )


async def run(ctx: CommandContext, words: list[str]) -> SlackMessage:
    """Respond to `/release stats`."""
    request = parse_request(words)
    view = await ctx.read(
        load_stats,
        settings=ctx.settings,
        team_id=ctx.team_id,
        channel_id=ctx.channel_id,
        request=request,
    )
    return render_stats(view, share=ctx.share)
