"""`/release status [OWNER/NAME] [VERSION]`: the release dashboard of a repository, or of every
repository the channel follows."""

from __future__ import annotations

from sqlmodel import Session

from bot.config import Settings
from bot.render.slack import SlackMessage
from bot.render.slack_messages import render_notice
from bot.render.slack_runs import render_repo_list, render_repo_status
from bot.render.slack_views import AppProblems, RepoLine, RepoStatus
from handlers.slack import run_data
from handlers.slack.access import Refusal, check_access, resolve_repository
from handlers.slack.arguments import ArgumentError, parse_arguments
from handlers.slack.context import CommandContext
from storage import github_app, slack_queries
from storage import slack as slack_store

NAMES = ("status",)
USAGE = "/release status [OWNER/NAME] [VERSION]"
SUMMARY = (
    "The release dashboard: stages, status, durations, who triggered it, links and running jobs, "
    "and GitHub App problems (blocked calls, missing permissions, an invalid .github/release-bot.yml). "
    "Without VERSION, the latest release; without a repository, every repository this channel follows."
)
# Release tags listed when an unknown version is asked for.
KNOWN_TAGS_SHOWN = 5


def load_status(
    session: Session, *, settings: Settings, team_id: str, repo_word: str, version: str | None
) -> RepoStatus:
    """Return one repository's dashboard, or raise ArgumentError or Refusal."""
    repo = resolve_repository(session, settings, team_id, repo_word, usage=USAGE)
    check_access(session, settings, team_id, repo)
    status = run_data.repo_status(session, repo, version)
    if status is None:
        tags = slack_queries.list_release_tags(session=session, repo=repo, limit=KNOWN_TAGS_SHOWN)
        known = (
            f"recent releases: {', '.join(tags)}" if tags else "no release of it is recorded yet"
        )
        raise ArgumentError(f"unknown version {version!r} of {repo}: {known}", usage=USAGE)
    status.app_problems = load_app_problems(session, repo)
    return status


def load_app_problems(session: Session, repo: str) -> AppProblems | None:
    """Return the repository's GitHub App problems (blocked calls, missing permissions, invalid
    configuration file), or None when there is none."""
    described = github_app.describe_repository(session=session, repo=repo)
    problems = AppProblems(
        installation_id=described.installation_id,
        blocked_reason=described.blocked_reason,
        missing_permissions=described.missing_permissions,
        config_problems=described.config_problems,
    )
    return problems if problems.has_problems else None


def load_followed(session: Session, *, team_id: str, channel_id: str) -> list[str]:
    """Return the repositories the channel follows, each once."""
    subscriptions = slack_store.list_subscriptions(
        session=session, team_id=team_id, channel_id=channel_id
    )
    return list(dict.fromkeys(subscription.repo for subscription in subscriptions))


def load_lines(
    session: Session, *, settings: Settings, team_id: str, repos: list[str]
) -> list[RepoLine]:
    """Summarize each repository in a line; one the workspace may no longer see gets the reason."""
    lines = []
    for repo in repos:
        try:
            check_access(session, settings, team_id, repo)
        except Refusal as refusal:
            lines.append(run_data.repo_line(session, repo, notice=refusal.summary))
            continue
        lines.append(run_data.repo_line(session, repo))
    return lines


async def run(ctx: CommandContext, words: list[str]) -> SlackMessage:
    """Respond to `/release status`."""
    arguments = parse_arguments(words, options={}, usage=USAGE)
    if len(arguments.words) > 2:
        extra = " ".join(arguments.words[2:])
        raise ArgumentError(
            f"unexpected arguments {extra!r}: give at most OWNER/NAME and VERSION", usage=USAGE
        )

    if arguments.words:
        version = arguments.words[1] if len(arguments.words) == 2 else None
        status = await ctx.read(
            load_status,
            settings=ctx.settings,
            team_id=ctx.team_id,
            repo_word=arguments.words[0],
            version=version,
        )
        return render_repo_status(status, share=ctx.share)

    repos = await ctx.read(load_followed, team_id=ctx.team_id, channel_id=ctx.channel_id)
    if not repos:
        return render_notice(
            "This channel follows no repositories. Ask for one with `/release status OWNER/NAME`, "
            "or follow one here with `/release subscribe OWNER/NAME`."
        )
    if len(repos) == 1:
        status = await ctx.read(
            load_status,
            settings=ctx.settings,
            team_id=ctx.team_id,
            repo_word=repos[0],
            version=None,
        )
        return render_repo_status(status, share=ctx.share)
    lines = await ctx.read(load_lines, settings=ctx.settings, team_id=ctx.team_id, repos=repos)
    return render_repo_list(lines, scope="this channel", share=ctx.share)
