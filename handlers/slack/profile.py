"""`/release profile [OWNER/NAME] [RUN_ID | latest]`: where a run's time went."""

from __future__ import annotations

import asyncio

from sqlmodel import Session

from bot.config import Settings
from bot.render.slack import SlackMessage
from bot.render.slack_runs import render_profile
from handlers.slack import run_data
from handlers.slack.access import check_access, resolve_repository
from handlers.slack.arguments import ArgumentError, parse_arguments
from handlers.slack.context import CommandContext
from storage import queries
from storage import slack as slack_store

NAMES = ("profile",)
USAGE = "/release profile [OWNER/NAME] [RUN_ID | latest]"
SUMMARY = (
    "Stage breakdown, bottlenecks, critical path and the comparison with the branch baseline of a "
    "run (default: the repository's latest run). Every job is listed, slowest first."
)
RUN_HINT = "use a run id (the number in .../actions/runs/RUN_ID) or latest"


def parse_words(words: list[str]) -> tuple[str | None, int | None]:
    """Return the repository word and the run id (None for latest), or raise ArgumentError."""
    arguments = parse_arguments(words, options={}, usage=USAGE)
    repo_word: str | None = None
    run_id: int | None = None
    run_given = False
    for word in arguments.words:
        if not run_given and (word.isdigit() or word.lower() == "latest"):
            run_id = int(word) if word.isdigit() else None
            run_given = True
        elif repo_word is None and not run_given:
            repo_word = word
        elif run_given:
            raise ArgumentError(
                f"unexpected argument {word!r} after the run: give OWNER/NAME first", usage=USAGE
            )
        else:
            raise ArgumentError(f"invalid run {word!r}: {RUN_HINT}", usage=USAGE)
    return repo_word, run_id


def load_profile(
    session: Session,
    *,
    settings: Settings,
    team_id: str,
    channel_id: str,
    repo_word: str | None,
    run_id: int | None,
) -> run_data.ProfileInputs:
    """Find the run, check the workspace may see its repository, and read what its profile needs."""
    repo = (
        resolve_repository(session, settings, team_id, repo_word, usage=USAGE)
        if repo_word
        else None
    )
    if run_id is not None:
        run = queries.get_run(session=session, run_id=run_id)
        if run is None or (repo is not None and run.repo != repo):
            where = f" in {repo}" if repo else ""
            raise ArgumentError(f"unknown run {run_id}{where}: {RUN_HINT}", usage=USAGE)
        check_access(session, settings, team_id, run.repo)
        return run_data.load_profile_inputs(session, run)

    if repo is None:
        followed = sorted(
            {
                row.repo
                for row in slack_store.list_subscriptions(
                    session=session, team_id=team_id, channel_id=channel_id
                )
            }
        )
        if len(followed) != 1:
            raise ArgumentError("give a repository as OWNER/NAME, or a run id", usage=USAGE)
        repo = followed[0]
    check_access(session, settings, team_id, repo)
    runs = queries.list_runs(session=session, repo=repo, limit=1)
    if not runs:
        raise ArgumentError(
            f"no runs of {repo} are recorded yet: {RUN_HINT} once one has run", usage=USAGE
        )
    return run_data.load_profile_inputs(session, runs[0])


async def run(ctx: CommandContext, words: list[str]) -> SlackMessage:
    """Respond to `/release profile`."""
    repo_word, run_id = parse_words(words)
    inputs = await ctx.read(
        load_profile,
        settings=ctx.settings,
        team_id=ctx.team_id,
        channel_id=ctx.channel_id,
        repo_word=repo_word,
        run_id=run_id,
    )
    profile = await asyncio.to_thread(run_data.build_profile, ctx.engine, inputs)
    return render_profile(profile, share=ctx.share)
