"""Slack messages about runs and releases: the status dashboard (with the GitHub App's problems),
run profiles, the live status message and the App Home tab. Long job lists put the slowest jobs
first and end with "and N more jobs" when they do not fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.render.slack import (
    MAX_VIEW_BLOCKS,
    BlockBuilder,
    SlackMessage,
    count_of,
    escape,
    format_duration,
    format_percent,
    format_signed_duration,
    format_time,
    inline,
    link,
    status_icon,
    status_word,
    url_segment,
)
from bot.render.slack_messages import finish
from bot.render.slack_views import (
    AppProblems,
    JobRow,
    RepoLine,
    RepoStatus,
    RunProfile,
    RunSummary,
    StageRow,
)

GITHUB = "https://github.com"
# Section blocks given to the job list of a profile; the rest of the message needs about ten.
JOB_LIST_BLOCKS = 30


def repo_link(repo: str) -> str:
    """Link a repository to its GitHub page."""
    return link(f"{GITHUB}/{url_segment(repo)}", repo)


def branch_link(repo: str, branch: str | None) -> str:
    """Link a branch to its tree on GitHub; the branch name is percent-encoded in the URL."""
    if not branch:
        return "-"
    return link(f"{GITHUB}/{url_segment(repo)}/tree/{url_segment(branch)}", branch)


def run_label(run: RunSummary) -> str:
    """Return `CI #100` (raw text), or the run id when the workflow is unknown."""
    name = run.workflow or "run"
    return f"{name} #{run.run_number}" if run.run_number else f"{name} {run.run_id}"


def job_label(job: JobRow) -> str:
    """Return a job's name, with its id when other jobs of the run share the name (raw text)."""
    if job.ordinal is None:
        return job.name
    return f"{job.name} (job {job.job_id})"


def job_line(job: JobRow) -> str:
    """Format one job as a line: status, linked name, duration, queue time, and baseline if known."""
    parts = [f"{status_icon(job.status, job.conclusion)} {link(job.html_url, job_label(job))}"]
    if job.is_running:
        parts.append(f"running since {format_time(job.started_at)}")
    else:
        parts.append(format_duration(job.duration_s))
    if job.queue_s:
        parts.append(f"queued {format_duration(job.queue_s)}")
    if job.baseline_s is not None and job.duration_s is not None:
        parts.append(f"baseline {format_duration(job.baseline_s)}")
    return " · ".join(parts)


def slowest_first(jobs: Sequence[JobRow]) -> list[JobRow]:
    """Order jobs by duration, longest first; jobs without a duration last, by id."""
    return sorted(
        jobs, key=lambda job: (job.duration_s is None, -(job.duration_s or 0), job.job_id)
    )


def stage_field(stage: StageRow) -> str:
    """Format one stage as a field: status, then job count and times, or a dashboard stage's duration and message."""
    title = f"*{link(stage.html_url, stage.name) if stage.html_url else inline(stage.name.capitalize())}* {status_icon(stage.status)}"
    if stage.job_count is None:
        details = [status_word(stage.status), format_duration(stage.wall_s)]
        if stage.message:
            details.append(inline(stage.message))
        return f"{title}\n" + " · ".join(details)
    return (
        f"{title}\n{count_of(stage.job_count, 'job')} · {format_duration(stage.job_time_s)} job time · "
        f"{format_duration(stage.wall_s)} wall"
    )


def stage_fields(stages: Sequence[StageRow]) -> list[str]:
    """Format each stage as a field."""
    return [stage_field(stage) for stage in stages]


def run_line(run: RunSummary) -> str:
    """Format one run as a line: status, link, branch, duration, who triggered it and its title."""
    line = (
        f"{status_icon(run.status, run.conclusion)} {link(run.html_url, run_label(run))} · "
        f"{status_word(run.status, run.conclusion)} · {format_duration(run.duration_s)} · "
        f"branch {branch_link(run.repo, run.branch)}"
    )
    if run.attempt > 1:
        line += f" · attempt {run.attempt}"
    if run.actor:
        line += f" · triggered by {inline(run.actor)}"
    if run.title:
        line += f"\n> {inline(run.title)}"
    return line


def running_lines(runs: Sequence[RunSummary]) -> list[str]:
    """Format the running jobs of the given runs, one line each."""
    return [
        f"{job_line(job)} · {link(run.html_url, run_label(run))}"
        for run in runs
        for job in run.running_jobs
    ]


def app_problem_lines(problems: AppProblems) -> list[str]:
    """Format each GitHub App problem as a line saying what is wrong and what to do."""
    lines = []
    if problems.blocked_reason:
        lines.append(
            f":no_entry: release-bot makes no GitHub calls for this repository: "
            f"{inline(problems.blocked_reason)}"
        )
    for missing in problems.missing_permissions:
        # Stored as `pull_requests=write`, the form GitHub's X-Accepted-GitHub-Permissions header uses.
        permission = inline(str(missing.get("permission") or "unknown").replace("=", ": "))
        operation = inline(missing.get("operation") or "a call")
        lines.append(
            f":warning: missing App permission *{permission}* (needed to {operation}): grant it in "
            "the GitHub App's settings, then accept the new permissions on the installation"
        )
    for problem in problems.config_problems:
        lines.append(
            f":warning: invalid {inline(problem.get('file') or 'configuration file')} · key "
            f"{inline(problem.get('key') or '(unknown)')}: {inline(problem.get('reason') or 'invalid')}"
        )
    return lines


def add_app_problems(builder: BlockBuilder, problems: AppProblems) -> None:
    """Add the GitHub App problems of a repository, keeping room for the dashboard after them."""
    builder.section("*GitHub App*")
    builder.lines(
        app_problem_lines(problems),
        max_blocks=2,
        more=lambda count: f"and {count} more GitHub App problems",
        reserve=8,
    )
    if problems.config_problems:
        builder.context(
            ["The last valid configuration, or the defaults, stays in force until the file is fixed."]
        )


def add_repo_dashboard(builder: BlockBuilder, status: RepoStatus) -> None:
    """Add one repository's release, stages, latest runs and running jobs."""
    release = status.release
    if release is not None:
        title = (
            release.tag
            if not release.name or release.name == release.tag
            else f"{release.tag} ({release.name})"
        )
        by = f" · by {inline(release.author)}" if release.author else ""
        builder.section(
            f"*Release* {link(release.html_url, title)} · {escape(release.state)}{by} · "
            f"{format_time(release.published_at)}"
        )
    if status.overall is not None:
        builder.section(
            f"*Publish status:* {status_icon(status.overall)} {status_word(status.overall)}"
        )
    if status.notice:
        builder.context([escape(status.notice)])
    if status.app_problems is not None:
        add_app_problems(builder, status.app_problems)
    if status.stages:
        builder.fields(stage_fields(status.stages))
    if status.runs:
        builder.lines(
            [run_line(run) for run in status.runs],
            max_blocks=4,
            more=lambda count: f"and {count} more runs",
            reserve=3,
        )
    running = running_lines(status.runs)
    builder.section(f"*Running jobs:* {len(running)}")
    if running:
        builder.lines(
            running, max_blocks=4, more=lambda count: f"and {count} more running jobs", reserve=1
        )


def render_repo_status(status: RepoStatus, *, share: str | None) -> SlackMessage:
    """Render the dashboard of one repository."""
    builder = BlockBuilder()
    title = f"{status.repo} {status.version}" if status.version else status.repo
    builder.header(f"Release status: {title}")
    builder.context([repo_link(status.repo)])
    add_repo_dashboard(builder, status)
    running = sum(len(run.running_jobs) for run in status.runs)
    fallback = (
        f"Release status of {inline(title)}: {count_of(len(status.runs), 'run')}, "
        f"{count_of(running, 'running job')}"
    )
    return finish(builder, fallback, share)


def repo_line(line: RepoLine) -> str:
    """Format one followed repository as a line: latest release, latest run and running jobs."""
    parts = [f"*{repo_link(line.repo)}*"]
    if line.notice:
        parts.append(escape(line.notice))
    if line.release_tag:
        parts.append(f"release {inline(line.release_tag)}")
    run = line.latest_run
    if run is not None:
        parts.append(
            f"{status_icon(run.status, run.conclusion)} {link(run.html_url, run_label(run))} "
            f"{status_word(run.status, run.conclusion)} {format_duration(run.duration_s)}"
        )
        parts.append(count_of(len(run.running_jobs), "running job"))
    elif not line.notice:
        parts.append("no runs recorded")
    return " · ".join(parts)


def render_repo_list(lines: Sequence[RepoLine], *, scope: str, share: str | None) -> SlackMessage:
    """Render several repositories, one line each (the status of everything a channel follows)."""
    builder = BlockBuilder()
    builder.header(
        f"Release status: {count_of(len(lines), 'repository', 'repositories')} followed in {scope}"
    )
    builder.lines(
        [repo_line(line) for line in lines],
        more=lambda count: f"and {count} more repositories",
        reserve=1,
    )
    return finish(
        builder, f"Release status of {count_of(len(lines), 'repository', 'repositories')}", share
    )


def add_profile_details(builder: BlockBuilder, profile: RunProfile) -> None:
    """Add stages, bottlenecks, critical path and the baseline comparison."""
    if profile.stages:
        builder.fields(stage_fields(profile.stages))
    if profile.bottlenecks:
        lines = [
            f"{index}. {link(item.job.html_url, job_label(item.job))} · {format_duration(item.job.duration_s)} · "
            f"{format_percent(item.share)} of the run"
            + (" · on the critical path" if item.on_critical_path else "")
            for index, item in enumerate(profile.bottlenecks, start=1)
        ]
        builder.section("*Bottlenecks*\n" + "\n".join(lines))
    if profile.critical_path:
        path = " → ".join(inline(job_label(job)) for job in profile.critical_path)
        builder.section(
            f"*Critical path* ({format_duration(profile.critical_path_s)} of job time)\n{path}"
        )
    baseline = profile.baseline
    if baseline is not None:
        relative = (
            f" ({baseline.delta_s / baseline.median_s * 100:+.1f}%)" if baseline.median_s else ""
        )
        builder.section(
            f"*Against the {inline(baseline.branch)} baseline* (median of {baseline.run_count} earlier runs: "
            f"{format_duration(baseline.median_s)}): {format_signed_duration(baseline.delta_s)}{relative}"
        )


def render_profile(profile: RunProfile, *, share: str | None) -> SlackMessage:
    """Render where a run's time went, listing its jobs slowest first."""
    run = profile.run
    builder = BlockBuilder()
    builder.header(f"Profile: {run_label(run)} · {run.repo}")
    builder.section(run_line(run))
    add_profile_details(builder, profile)
    builder.divider()
    jobs = slowest_first(run.jobs)
    builder.section(
        f"*Jobs* ({len(jobs)}, slowest first, {format_duration(profile.total_job_time_s)} of job time)"
    )
    builder.lines(
        [job_line(job) for job in jobs],
        max_blocks=JOB_LIST_BLOCKS,
        more=lambda count: f"and {count} more jobs",
        reserve=1,
    )
    slowest = (
        f"; slowest job {inline(job_label(jobs[0]))} {format_duration(jobs[0].duration_s)}"
        if jobs
        else ""
    )
    fallback = (
        f"Profile of {inline(run_label(run))} in {inline(run.repo)}: {status_word(run.status, run.conclusion)} "
        f"in {format_duration(run.duration_s)}{slowest}"
    )
    return finish(builder, fallback, share)


def render_live_status(run: RunSummary, profile: RunProfile | None) -> SlackMessage:
    """Render the live status message of a release run, ending with its profile once it completed."""
    builder = BlockBuilder()
    state = "finished" if run.status == "completed" else "in progress"
    builder.header(f"{run_label(run)} {state}: {run.repo}")
    builder.section(run_line(run))
    if profile is not None:
        add_profile_details(builder, profile)
    else:
        running, waiting = len(run.running_jobs), len(run.waiting_jobs)
        done = sum(1 for job in run.jobs if job.status == "completed")
        builder.context([f"{running} running · {waiting} waiting · {done} completed"])
    ordered = [*run.running_jobs, *run.waiting_jobs]
    ordered += slowest_first([job for job in run.jobs if job not in ordered])
    builder.lines(
        [job_line(job) for job in ordered],
        max_blocks=JOB_LIST_BLOCKS,
        more=lambda count: f"and {count} more jobs",
    )
    fallback = (
        f"{inline(run_label(run))} in {inline(run.repo)}: {status_word(run.status, run.conclusion)}, "
        f"{format_duration(run.duration_s)}"
    )
    return builder.build(fallback)


def render_home(lines: Sequence[RepoLine]) -> dict[str, Any]:
    """Render the App Home tab, every repository the workspace follows, as a `home` view."""
    builder = BlockBuilder(max_blocks=MAX_VIEW_BLOCKS, max_text=None)
    builder.header("Release status")
    if not lines:
        builder.section(
            "This workspace follows no repositories yet. In a channel, run "
            "`/release subscribe OWNER/NAME` to follow one."
        )
    else:
        builder.context(
            [f"{count_of(len(lines), 'repository', 'repositories')} followed in this workspace"]
        )
        builder.lines(
            [repo_line(line) for line in lines], more=lambda count: f"and {count} more repositories"
        )
    message = builder.build("Release status")
    return {"type": "home", "blocks": message.blocks}
