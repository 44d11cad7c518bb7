"""Gathering of runs, releases and profiles from storage into the views the Slack renderers draw.

Jobs are keyed by GitHub's job id, so jobs that share a name stay separate rows. They get
an ordinal so the renderers can tell them apart. Profiles come from bot.profiler's
BuildProfiler and release stages from the release dashboard (bot.dashboard). Slack therefore
shows what the Python API computes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session

from bot.dashboard import overall_status
from bot.profiler import BuildProfile, BuildProfiler
from bot.render.slack_views import (
    Baseline,
    Bottleneck,
    JobRow,
    ReleaseInfo,
    RepoLine,
    RepoStatus,
    RunProfile,
    RunSummary,
    StageRow,
)
from storage import profiles, queries, releases, slack_queries
from storage.models import Job, Release, RunAttempt, WorkflowRun
from storage.models_release import PublishStatus
from storage.types import utc_now

STAGE_ORDER = ("build", "test", "publish", "deploy")
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})
# Runs shown for a repository, and earlier runs that make a branch baseline.
RECENT_RUNS = 20
DASHBOARD_WORKFLOWS = 5
BASELINE_RUNS = 10
# A bottleneck is a critical-path job taking at least this share of the run's wall time.
BOTTLENECK_SHARE = 0.1


def job_rows(jobs: Sequence[Job]) -> list[JobRow]:
    """Convert jobs to rows, numbering those that share a name in job-id order."""
    counts = Counter(job.name for job in jobs)
    seen: Counter[str] = Counter()
    rows = []
    for job in sorted(jobs, key=lambda item: item.id):
        ordinal = None
        if counts[job.name] > 1:
            seen[job.name] += 1
            ordinal = seen[job.name]
        rows.append(
            JobRow(
                job_id=job.id,
                name=job.name,
                stage=job.stage,
                status=job.status,
                conclusion=job.conclusion,
                duration_s=job.duration_s,
                queue_s=job.queue_s,
                started_at=job.started_at,
                completed_at=job.completed_at,
                html_url=job.html_url,
                runner_name=job.runner_name,
                ordinal=ordinal,
            )
        )
    return rows


def summarize_runs(session: Session, runs: Sequence[WorkflowRun]) -> list[RunSummary]:
    """Return each run's latest attempt with the jobs of that attempt, in the order given."""
    run_ids = [run.id for run in runs]
    attempts: dict[int, dict[int, RunAttempt]] = defaultdict(dict)
    for attempt in queries.list_attempts(session=session, run_ids=run_ids):
        attempts[attempt.run_id][attempt.attempt] = attempt
    jobs: dict[tuple[int, int], list[Job]] = defaultdict(list)
    for job in queries.list_jobs(session=session, run_ids=run_ids):
        jobs[(job.run_id, job.run_attempt)].append(job)

    summaries = []
    now = utc_now()
    for run in runs:
        known = set(attempts[run.id]) | {number for run_id, number in jobs if run_id == run.id}
        number = max(known | {run.latest_attempt or 1})
        attempt = attempts[run.id].get(number)
        attempt_jobs = jobs.get((run.id, number), [])
        if attempt is not None:
            status = attempt.status
        elif any(job.status != "completed" for job in attempt_jobs):
            status = "in_progress"
        else:
            # Only job events arrived, and the run's own event will record how it ended.
            status = "unknown"
        started = attempt.run_started_at if attempt else run.created_at
        duration = attempt.duration_s if attempt else None
        if status not in ("completed", "unknown") and started is not None:
            duration = max(0.0, (now - started).total_seconds())
        summaries.append(
            RunSummary(
                run_id=run.id,
                repo=run.repo,
                workflow=run.workflow_name,
                run_number=run.run_number,
                branch=run.head_branch,
                event=run.event,
                title=run.display_title,
                actor=(attempt.triggering_actor if attempt else None) or run.actor,
                html_url=run.html_url,
                attempt=number,
                status=status,
                conclusion=attempt.conclusion if attempt else None,
                duration_s=duration,
                started_at=started,
                completed_at=attempt.completed_at if attempt else None,
                jobs=job_rows(attempt_jobs),
            )
        )
    return summaries


def stage_status(jobs: Sequence[JobRow]) -> str:
    """Combine job states into one stage state: running wins, then failure, waiting, success."""
    if any(job.status == "in_progress" for job in jobs):
        return "in_progress"
    if any(job.conclusion in FAILED_CONCLUSIONS for job in jobs):
        return "failure"
    if any(job.status != "completed" for job in jobs):
        return "queued"
    if all(job.conclusion in ("skipped", "cancelled") for job in jobs):
        return "skipped" if any(job.conclusion == "skipped" for job in jobs) else "cancelled"
    return "success"


def stage_rows(jobs: Sequence[JobRow]) -> list[StageRow]:
    """Group jobs by stage: job count, state, summed job time and wall time from first start to last end."""
    by_stage: dict[str, list[JobRow]] = defaultdict(list)
    for job in jobs:
        by_stage[job.stage].append(job)
    ordered = [name for name in STAGE_ORDER if name in by_stage] + sorted(
        set(by_stage) - set(STAGE_ORDER)
    )
    rows = []
    for name in ordered:
        members = by_stage[name]
        starts = [job.started_at for job in members if job.started_at]
        ends = [job.completed_at for job in members if job.completed_at]
        wall = max(0.0, (max(ends) - min(starts)).total_seconds()) if starts and ends else None
        rows.append(
            StageRow(
                name=name,
                job_count=len(members),
                status=stage_status(members),
                job_time_s=sum(job.duration_s or 0.0 for job in members),
                wall_s=wall,
            )
        )
    return rows


@dataclass
class ProfileInputs:
    """The data a profile needs from the database, read in one session."""

    summary: RunSummary
    attempt_jobs: profiles.AttemptJobs | None


def load_profile_inputs(session: Session, run: WorkflowRun) -> ProfileInputs:
    """Read a run's latest attempt and its jobs and steps."""
    summary = summarize_runs(session, [run])[0]
    attempt_jobs = profiles.load_attempt_jobs(
        session=session, run_id=run.id, attempt=summary.attempt
    )
    return ProfileInputs(summary=summary, attempt_jobs=attempt_jobs)


def comparable_labels(build: BuildProfile) -> dict[int, str]:
    """Map job ids to the labels BuildProfiler compares across runs (`name`, or `name #n` when repeated)."""
    counts = Counter(item.name for item in build.stages)
    seen: Counter[str] = Counter()
    labels = {}
    for item in build.stages:
        seen[item.name] += 1
        if item.stage.job_id is not None:
            labels[item.stage.job_id] = (
                item.name if counts[item.name] == 1 else f"{item.name} #{seen[item.name]}"
            )
    return labels


def build_profile(engine: Engine, inputs: ProfileInputs) -> RunProfile:
    """Profile a run with BuildProfiler and compare it with its branch baseline.

    Call it outside any open session: the baseline comparison opens its own, and on SQLite a
    second transaction in the same thread would wait for the first.
    """
    summary = inputs.summary
    empty = RunProfile(
        run=summary,
        stages=stage_rows(summary.jobs),
        bottlenecks=[],
        critical_path=[],
        critical_path_s=None,
        baseline=None,
        total_job_time_s=sum(job.duration_s or 0.0 for job in summary.jobs),
    )
    if inputs.attempt_jobs is None or not inputs.attempt_jobs.jobs:
        return empty

    profiler = BuildProfiler.from_jobs(inputs.attempt_jobs, engine=engine)
    build = profiler.profile_build()
    by_id = {job.job_id: job for job in summary.jobs}
    path = [by_id[item.stage.job_id] for item in build.critical_path if item.stage.job_id in by_id]
    bottlenecks = [
        Bottleneck(job=by_id[item.stage.job_id], share=item.share, on_critical_path=True)
        for item in profiler.get_bottlenecks(BOTTLENECK_SHARE)
        if item.stage.job_id in by_id
    ]

    baseline = None
    branch = inputs.attempt_jobs.run.head_branch
    if branch:
        try:
            comparison = profiler.compare_to_baseline(branch=branch, last_n=BASELINE_RUNS)
        except ValueError:
            # A run without a workflow name has no baseline to compare with.
            comparison = None
        if (
            comparison is not None
            and comparison.baseline_runs
            and comparison.wall_before is not None
        ):
            baseline = Baseline(
                branch=branch,
                run_count=comparison.baseline_runs,
                median_s=comparison.wall_before,
                delta_s=comparison.wall_after - comparison.wall_before,
            )
            before = {change.label: change.before for change in comparison.stages}
            for job_id, label in comparable_labels(build).items():
                if job_id in by_id:
                    by_id[job_id].baseline_s = before.get(label)

    return RunProfile(
        run=summary,
        stages=empty.stages,
        bottlenecks=bottlenecks,
        critical_path=path,
        critical_path_s=build.critical_path_time if path else None,
        baseline=baseline,
        total_job_time_s=empty.total_job_time_s,
    )


def release_info(release: Release) -> ReleaseInfo:
    """Convert a stored release."""
    return ReleaseInfo(
        tag=release.tag_name or "",
        name=release.name,
        state=release.state,
        author=release.author,
        html_url=release.html_url,
        published_at=release.published_at or release.created_at,
        prerelease=release.prerelease,
    )


def latest_per_workflow(runs: Sequence[WorkflowRun], limit: int) -> list[WorkflowRun]:
    """Keep the newest run of each workflow, newest first, at most `limit`."""
    seen: set[str | None] = set()
    kept = []
    for run in runs:
        if run.workflow_name in seen:
            continue
        seen.add(run.workflow_name)
        kept.append(run)
    return kept[:limit]


def repo_status(session: Session, repo: str, version: str | None) -> RepoStatus | None:
    """Build a repository's dashboard for a version (a release tag), or for its latest release.

    Return None when a version was asked for and neither a release nor a run of that tag is known.
    """
    release = (
        slack_queries.find_release(session=session, repo=repo, tag=version)
        if version
        else slack_queries.latest_release(session=session, repo=repo)
    )
    tag = release.tag_name if release is not None and release.tag_name else version
    runs: list[WorkflowRun] = []
    if tag:
        runs = list(queries.list_runs(session=session, repo=repo, branch=tag, limit=RECENT_RUNS))
    if version and release is None and not runs:
        return None

    notice = None
    if not runs:
        runs = latest_per_workflow(
            queries.list_runs(session=session, repo=repo, limit=RECENT_RUNS), DASHBOARD_WORKFLOWS
        )
        if release is None:
            notice = "No release recorded yet; showing the latest run of each workflow."
        else:
            notice = f"No runs of {tag} recorded; showing the latest run of each workflow."
    summaries = summarize_runs(session, runs)
    jobs = [job for summary in summaries for job in summary.jobs]
    stages, overall = dashboard_stages(session, repo, tag)
    return RepoStatus(
        repo=repo,
        version=tag,
        release=release_info(release) if release is not None else None,
        stages=stages or stage_rows(jobs),
        runs=summaries,
        notice=notice,
        overall=overall,
    )


def dashboard_stages(
    session: Session, repo: str, tag: str | None
) -> tuple[list[StageRow], str | None]:
    """Return the stages and overall status of the release dashboard of a version, if it has one."""
    if not tag:
        return [], None
    try:
        version = releases.normalize_version(tag)
    except ValueError:
        return [], None
    dashboard = releases.get_dashboard(session=session, repo=repo, version=version)
    if dashboard is None:
        return [], None
    stages = releases.list_stages(session=session, dashboard=dashboard)
    if not stages:
        return [], None
    rows = [
        StageRow(
            name=stage.name,
            job_count=None,
            status=stage.status,
            job_time_s=None,
            wall_s=stage.duration_s,
            message=stage.message or None,
            html_url=stage.html_url,
        )
        for stage in stages
    ]
    return rows, overall_status([PublishStatus(stage.status) for stage in stages]).value


def repo_line(session: Session, repo: str, notice: str | None = None) -> RepoLine:
    """Summarize a repository in one line: its latest release and its latest run."""
    if notice is not None:
        return RepoLine(repo=repo, release_tag=None, latest_run=None, notice=notice)
    release = slack_queries.latest_release(session=session, repo=repo)
    runs = queries.list_runs(session=session, repo=repo, limit=1)
    summaries = summarize_runs(session, list(runs))
    return RepoLine(
        repo=repo,
        release_tag=release.tag_name if release is not None else None,
        latest_run=summaries[0] if summaries else None,
    )
