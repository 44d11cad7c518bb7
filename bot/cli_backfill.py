"""`release-bot backfill`: record a repository's past workflow runs and jobs from GitHub's API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Self

import typer

from bot.cli_common import check_database, console, fail, settings_or_exit, terminal_text

if TYPE_CHECKING:
    from bot.backfill import BackfillReport

# Typer's rich help keeps the line breaks of the text, so each paragraph is one string here.
BACKFILL_HELP = "\n\n".join(
    [
        (
            "Record a repository's past workflow runs and jobs, read from GitHub's REST API as "
            "the GitHub App installation, the same way as webhooks record them."
        ),
        (
            "Progress is saved after each run: after an interruption, the same command "
            "continues where it stopped and does not read finished runs again."
        ),
        (
            "Exit status: 0 when every page was read; 1 when GitHub or the database failed "
            "(run the command again to resume) or a run was invalid; 2 for invalid options or "
            "settings."
        ),
    ]
)


def backfill(
    repo: Annotated[str, typer.Argument(metavar="OWNER/NAME", help="The repository, such as octo-org/widget.")],
    since: Annotated[
        str,
        typer.Option(help="Read runs created since this long ago (30d, 2w) or since an ISO 8601 date; whole days in UTC."),
    ] = "30d",
    restart: Annotated[
        bool, typer.Option("--restart", help="Forget the saved progress of this backfill and start over.")
    ] = False,
) -> None:
    """Record a repository's past workflow runs and jobs from GitHub's REST API."""
    from sqlalchemy.exc import OperationalError

    from bot import backfill as backfilling
    from bot.github_client import GitHubCallError
    from bot.periods import parse_since
    from storage.db import create_db_engine, upgrade_database

    if repo.count("/") != 1 or repo.startswith("/") or repo.endswith("/"):
        raise fail(f"invalid repository {repo!r}: use OWNER/NAME, such as octo-org/widget", 2)
    try:
        start_day = parse_since(since).date()
    except ValueError as exc:
        raise fail(f"invalid --since: {exc}", 2) from None
    settings = settings_or_exit(quiet=True)
    pacing = backfilling.Pacing()
    github = backfilling.open_github_app(settings, pacing)
    if github is None:
        raise fail(
            f"cannot backfill {repo}: GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or "
            "GITHUB_PRIVATE_KEY_PATH) are not set; backfill reads runs as the GitHub App, so set "
            "them as for `release-bot serve`",
            2,
        )

    check_database(settings)
    upgrade_database(settings.database_url)
    engine = create_db_engine(settings.database_url, pool_size=1)
    report: BackfillReport | None = None
    try:
        installation_id = backfilling.find_installation_id(engine, github, repo.lower())
        with ProgressBar() as bar:
            task = backfilling.Backfill(
                engine=engine,
                settings=settings,
                github=github,
                repo=repo,
                since=start_day,
                installation_id=installation_id,
                pacing=pacing,
                on_progress=bar.update,
            )
            report = task.report
            task.run(restart=restart)
    except (backfilling.BackfillError, GitHubCallError, OperationalError) as exc:
        if report is not None:
            typer.echo(summary_line(report))
        advice = next_step(exc, repo)
        message = f"backfill of {repo} stopped: {terminal_text(str(exc))}"
        raise fail(f"{message}; {advice}" if advice else message) from None
    finally:
        engine.dispose()

    assert report is not None
    typer.echo(summary_line(report))
    if report.is_truncated:
        typer.echo(
            f"release-bot: GitHub lists at most {backfilling.MAX_LISTED_RUNS} of the "
            f"{report.total_count} runs created since {report.since}, newest first, so runs created "
            f"before {report.oldest_listed or 'the oldest one listed'} were not read",
            err=True,
        )
    if report.runs_invalid:
        raise typer.Exit(1)


def next_step(exc: Exception, repo: str) -> str | None:
    """Return what to do after a backfill stopped on this error; None if the message already names it."""
    from bot.backfill import BackfillError
    from bot.github_client import AppCredentialsRejected, InstallationUnavailable, MissingPermission

    if isinstance(exc, BackfillError | AppCredentialsRejected):
        return None
    if isinstance(exc, MissingPermission):
        needed = " or ".join(exc.accepted) or "actions=read"
        return (
            f"give the GitHub App the permission {needed} on {repo} and accept it in the "
            "installation's settings, then run the same command again to resume"
        )
    if isinstance(exc, InstallationUnavailable):
        return f"install the GitHub App on {repo} again, then run the same command again to resume"
    return "progress is saved, run the same command again to resume"


def summary_line(report: BackfillReport) -> str:
    """Return the one-line summary of a backfill."""
    total = "?" if report.total_count is None else str(report.total_count)
    line = (
        f"{report.repo} since {report.since}: {report.runs_recorded} runs recorded "
        f"({report.jobs_recorded} jobs), {report.runs_skipped} already recorded, {report.done} of {total} done"
    )
    if report.runs_invalid:
        line += f"; {report.runs_invalid} invalid (run ids {', '.join(map(str, report.invalid_run_ids))})"
    if report.start_page > 1:
        line += f"; resumed at page {report.start_page}"
    return line


class ProgressBar:
    """A rich progress bar of runs done out of GitHub's total_count, on standard output."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]backfill"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("runs"),
            TimeElapsedColumn(),
            console=console(),
            transient=True,
        )
        self.task = self.progress.add_task("runs", total=None)

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def update(self, report: BackfillReport) -> None:
        self.progress.update(self.task, completed=report.done, total=report.total_count)
