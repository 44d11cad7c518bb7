"""`release-bot runs` and `release-bot stats`: the data of GET /api/v1/runs and /api/v1/stats
as terminal tables, or as the same JSON with `--json`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from bot.cli_common import (
    check_repo_option,
    console,
    fail,
    print_json,
    read_database,
    settings_or_exit,
)


def runs(
    run_id: Annotated[
        int | None, typer.Argument(help="Show this run with its attempts, jobs and steps.")
    ] = None,
    repo: Annotated[
        str | None, typer.Option(help="Only runs of this repository, as OWNER/NAME.")
    ] = None,
    workflow: Annotated[
        str | None, typer.Option(help="Only runs of the workflow with this name.")
    ] = None,
    branch: Annotated[str | None, typer.Option(help="Only runs on this head branch.")] = None,
    before: Annotated[
        int | None, typer.Option(help="Only runs with a smaller run id, to page back.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Show at most this many runs.")] = 50,
    jobs: Annotated[
        bool, typer.Option("--jobs", help="Show the jobs and steps of each run.")
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print the JSON of GET /api/v1/runs (or /api/v1/runs/RUN_ID)."),
    ] = False,
) -> None:
    """List recorded workflow runs, newest first, or show one run in detail."""
    from bot.render import terminal
    from bot.views import run_views
    from storage import queries

    settings = settings_or_exit(quiet=True)
    check_repo_option(repo)

    if run_id is not None:

        def load_one(session: Session) -> list[dict[str, Any]]:
            run = queries.get_run(session=session, run_id=run_id)
            return run_views(session, [run]) if run else []

        views = read_database(settings, load_one)
        if not views:
            raise fail(f"run {run_id} not found; `release-bot runs` lists the stored runs")
        if json_output:
            print_json(views[0])
            return
        console().print(terminal.run_detail(views[0]))
        return

    def load(session: Session) -> list[dict[str, Any]]:
        found = queries.list_runs(
            session=session,
            repo=repo,
            workflow=workflow,
            branch=branch,
            before_id=before,
            limit=limit,
        )
        return run_views(session, list(found))

    views = read_database(settings, load)
    if json_output:
        print_json({"runs": views})
        return
    if not views:
        typer.echo(
            "no runs match" if (repo or workflow or branch or before) else "no runs stored yet"
        )
        return
    output = console()
    if not jobs:
        output.print(terminal.runs_table(views))
        return
    for index, view in enumerate(views):
        if index:
            output.print()
        output.print(terminal.run_detail(view))


def stats(
    metric: Annotated[
        str,
        typer.Argument(
            help="build_time, queue_time, test_duration, publish_time, deployment_time or custom."
        ),
    ] = "build_time",
    repo: Annotated[
        str | None, typer.Option(help="Only points of this repository, as OWNER/NAME.")
    ] = None,
    workflow: Annotated[
        str | None, typer.Option(help="Only points of the workflow with this name.")
    ] = None,
    branch: Annotated[str | None, typer.Option(help="Only points of this branch.")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only points from this time on: 30m, 12h, 7d, 2w, or an ISO 8601 time."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the JSON of GET /api/v1/stats.")
    ] = False,
) -> None:
    """Show statistics of one metric: count, mean, min, percentiles, max, std dev and total."""
    from bot.periods import parse_since
    from bot.render import terminal
    from storage import metrics
    from storage.models import MetricType

    known = sorted(member.value for member in MetricType)
    if metric not in known:
        raise fail(f"unknown metric {metric!r}; use one of {', '.join(known)}", 2)
    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        raise fail(f"--since: {exc}", 2) from None
    check_repo_option(repo)
    settings = settings_or_exit(quiet=True)

    tags = {
        key: value
        for key, value in (
            ("repo", repo.lower() if repo else None),
            ("workflow", workflow),
            ("branch", branch),
        )
        if value is not None
    }
    metric_filter = metrics.MetricFilter(metric_type=metric, tags=tags, since=start)
    statistics = read_database(
        settings,
        lambda session: metrics.calculate_statistics(session=session, metric_filter=metric_filter),
    )
    if json_output:
        print_json({"metric": metric, **statistics})
        return
    filters = dict(tags)
    if since:
        filters["since"] = since
    seconds = metric != MetricType.CUSTOM.value
    console().print(terminal.stats_table(metric, statistics, filters, seconds=seconds))
