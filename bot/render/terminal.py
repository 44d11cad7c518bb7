"""Terminal rendering for the CLI: rich tables of runs, jobs, steps and metric statistics.

Names of branches, workflows, jobs and steps come from repositories the bot does not control,
so every such value goes through `printable` and into a `rich.text.Text`, which rich never
parses as markup.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bot.render.plain import EMPTY, format_duration, printable, result_of


def cell(value: object, style: str = "") -> Text:
    """Return a table cell that shows the value literally."""
    return Text(printable(value), style=style)


RESULT_STYLES = {"success": "green", "failure": "red", "cancelled": "yellow", "timed_out": "red"}


def result_cell(status: str | None, conclusion: str | None) -> Text:
    result = result_of(status, conclusion)
    return cell(result, RESULT_STYLES.get(result, ""))


def runs_table(views: list[dict[str, Any]]) -> Table:
    """Return one row per run: id, repository, workflow, branch, attempts, result, duration."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("Run", justify="right", no_wrap=True)
    table.add_column("Repository", overflow="fold")
    table.add_column("Workflow", overflow="fold")
    table.add_column("Branch", overflow="fold")
    table.add_column("Attempts", justify="right", no_wrap=True)
    table.add_column("Result", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    for view in views:
        table.add_row(
            cell(view["run_id"]),
            cell(view["repo"]),
            cell(view["workflow"]),
            cell(view["branch"]),
            cell(len(view["attempts"])),
            result_cell(view["status"], view["conclusion"]),
            cell(format_duration(view["duration_s"])),
        )
    return table


def run_header(view: dict[str, Any]) -> Text:
    """Return the lines that name a run: workflow, repository, commit, actor and links."""
    sha = (view.get("head_sha") or "")[:7]
    source = view.get("head_repository")
    title = f"Run {view['run_id']}: {view['workflow'] or EMPTY} #{view['run_number'] or EMPTY}"
    origin = f"  {view['event'] or EMPTY} on {view['branch'] or EMPTY} at {sha or EMPTY}"
    if source and source != view["repo"]:
        origin += f" from {source}"
    if view.get("actor"):
        origin += f" by {view['actor']}"
    lines = [f"{title} in {view['repo']}", origin]
    if view.get("title"):
        lines.append(f"  {view['title']}")
    if view.get("pull_requests"):
        lines.append(
            "  pull requests: " + ", ".join(f"#{number}" for number in view["pull_requests"])
        )
    if view.get("html_url"):
        lines.append(f"  {view['html_url']}")
    return Text("\n".join(printable(line) for line in lines))


def attempt_table(attempt: dict[str, Any], *, with_steps: bool) -> Table:
    """Return the jobs of one attempt, each followed by its steps when asked."""
    result = result_of(attempt["status"], attempt["conclusion"])
    title = f"Attempt {attempt['attempt']}: {result}, {format_duration(attempt['duration_s'])}"
    if attempt.get("triggering_actor"):
        title += f", started by {attempt['triggering_actor']}"

    table = Table(
        title=Text(printable(title)), title_justify="left", show_edge=False, pad_edge=False
    )
    table.add_column("Job / step", overflow="fold")
    table.add_column("Stage")
    table.add_column("Result")
    table.add_column("Queued", justify="right", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("Runner")

    for job in attempt["jobs"]:
        table.add_row(
            cell(job["name"], "bold"),
            cell(job["stage"]),
            result_cell(job["status"], job["conclusion"]),
            cell(format_duration(job["queue_s"])),
            cell(format_duration(job["duration_s"])),
            cell(job["runner_name"]),
        )
        if with_steps:
            add_step_rows(table, job["steps"])
    if not attempt["jobs"]:
        table.add_row(Text("no jobs recorded", style="dim"), *[Text("")] * 5)
    return table


def add_step_rows(table: Table, steps: list[dict[str, Any]]) -> None:
    """Add one indented row per step under its job."""
    blank = Text("")
    for step in steps:
        table.add_row(
            cell(f"  {step['number']}. {step['name']}", "dim"),
            blank,
            result_cell(step["status"], step["conclusion"]),
            blank,
            cell(format_duration(step["duration_s"]), "dim"),
            blank,
        )


def run_detail(view: dict[str, Any], *, with_steps: bool = True) -> Group:
    """Return a run's header and a table of jobs (and steps) for each of its attempts."""
    parts: list[RenderableType] = [run_header(view)]
    for attempt in view["attempts"]:
        parts.append(Text(""))
        parts.append(attempt_table(attempt, with_steps=with_steps))
    return Group(*parts)


STATISTIC_LABELS = (
    ("count", "count"),
    ("mean", "mean"),
    ("min", "min"),
    ("p50", "p50 (median)"),
    ("p90", "p90"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("max", "max"),
    ("stddev", "std dev"),
    ("total", "total"),
)


def format_number(value: float | None) -> str:
    """Format a number with at most two decimals and no trailing zeros."""
    if value is None:
        return EMPTY
    return f"{value:.2f}".rstrip("0").rstrip(".")


def stats_table(
    metric: str, statistics: dict[str, Any], filters: dict[str, str], *, seconds: bool
) -> Table:
    """Return one row per statistic; durations are also shown as `5m 12s` when `seconds` is set."""
    scope = ", ".join(f"{key}={value}" for key, value in filters.items()) or "all data"
    table = Table(
        title=Text(printable(f"{metric} ({scope})")),
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("Statistic")
    table.add_column("Seconds" if seconds else "Value", justify="right")
    if seconds:
        table.add_column("Duration", justify="right")
    for key, label in STATISTIC_LABELS:
        value = statistics.get(key)
        if key == "count":
            row = [label, str(value)] + ([""] if seconds else [])
        else:
            row = [label, format_number(value)] + ([format_duration(value)] if seconds else [])
        table.add_row(*row)
    if statistics.get("percentiles_exact") is False:
        table.caption = "percentiles estimated from histogram buckets"
        table.caption_justify = "left"
    return table
