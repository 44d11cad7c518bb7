"""The build profile of a pull request's head commit, computed from stored runs, jobs and steps.

For each workflow it contains the wall, queue and execution time, the bottlenecks, the
critical path, and each job compared with the median of recent successful runs of the same
workflow on the base branch.

NOTE: `bot.profiler.BuildProfiler` (used by Slack's profile) computes a critical path and
bottlenecks by slightly different rules (no slack between jobs, bottlenecks only on the
path). Its `compare_to_baseline` matches base-branch runs by branch name alone, which would
count a fork's pull request runs from a branch of the same name, so the baseline here comes
from `storage.github_app.list_baseline_runs`. `profile_run` is the one function to rebase
on BuildProfiler once they agree; the renderer reads only the dataclasses below.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from bot.repo_config import RepoConfig
from storage import github_app, queries
from storage.models import Job, RunAttempt, WorkflowRun

# A job counts as waiting for another when it started within this many seconds of its end.
CRITICAL_PATH_SLACK_SECONDS = 2.0
MAX_BOTTLENECKS = 3
# Fewer base-branch runs than this give too noisy a median to flag anything.
MIN_BASELINE_SAMPLES = 3
SLOWER = "slower"
FASTER = "faster"
UNCHANGED = "unchanged"


@dataclass
class StepTiming:
    """One step of a job."""

    number: int
    name: str
    conclusion: str | None
    duration_s: float | None
    stage: str | None = None


@dataclass
class JobTiming:
    """One job of the profiled run attempt."""

    id: int
    name: str
    stage: str
    status: str
    conclusion: str | None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    queue_s: float | None
    duration_s: float | None
    html_url: str | None
    steps: list[StepTiming] = field(default_factory=list)

    @property
    def has_run(self) -> bool:
        return self.started_at is not None and self.completed_at is not None and self.duration_s is not None


@dataclass
class Comparison:
    """A duration against the median of the same job (or run) on the base branch."""

    current_s: float
    baseline_s: float
    samples: int
    verdict: str

    @property
    def delta_s(self) -> float:
        return self.current_s - self.baseline_s

    @property
    def change(self) -> float | None:
        return self.delta_s / self.baseline_s if self.baseline_s > 0 else None


@dataclass
class Bottleneck:
    """A job that took a large share of the wall time, with its slowest step."""

    job: JobTiming
    share: float
    slowest_step: StepTiming | None


@dataclass
class WorkflowProfile:
    """The profile of the latest run of one workflow for the commit."""

    workflow_name: str
    event: str | None
    run_id: int
    run_number: int | None
    attempt: int
    html_url: str | None
    status: str
    conclusion: str | None
    wall_s: float | None
    queue_s: float
    max_queue_s: float
    execution_s: float
    jobs: list[JobTiming]
    critical_path: list[JobTiming] = field(default_factory=list)
    bottlenecks: list[Bottleneck] = field(default_factory=list)
    comparisons: dict[int, Comparison] = field(default_factory=dict)
    run_comparison: Comparison | None = None
    base_branch: str | None = None
    baseline_runs: int = 0


def compare(current: float, samples: list[float], config: RepoConfig) -> Comparison | None:
    """Compare a duration with the median of samples; slower or faster only past both margins."""
    if len(samples) < min(MIN_BASELINE_SAMPLES, config.regressions.baseline_runs):
        return None
    median = statistics.median(samples)
    delta = current - median
    relative = abs(delta) / median if median > 0 else float("inf")
    past_margins = (
        abs(delta) > config.regressions.absolute_threshold_seconds
        and relative > config.regressions.relative_threshold_percent / 100
    )
    verdict = UNCHANGED
    if past_margins:
        verdict = SLOWER if delta > 0 else FASTER
    return Comparison(current_s=current, baseline_s=median, samples=len(samples), verdict=verdict)


def estimate_critical_path(jobs: list[JobTiming]) -> list[JobTiming]:
    """Estimate the chain of jobs that decided when the run ended, first job first.

    Webhooks do not carry a job's `needs`, so the chain is rebuilt from times: starting at
    the job that ended last, each step goes back to the job that ended last before the
    current one started (within CRITICAL_PATH_SLACK_SECONDS).
    """
    ran = [job for job in jobs if job.has_run]
    if not ran:
        return []
    current = max(ran, key=lambda job: (job.completed_at, job.duration_s or 0.0))
    path = [current]
    while True:
        assert current.started_at is not None
        before = [
            job
            for job in ran
            if job not in path
            and job.completed_at is not None
            and (job.completed_at - current.started_at).total_seconds() <= CRITICAL_PATH_SLACK_SECONDS
        ]
        if not before:
            break
        current = max(before, key=lambda job: job.completed_at)  # type: ignore[arg-type, return-value]
        path.append(current)
    return list(reversed(path))


def find_bottlenecks(jobs: list[JobTiming], wall_s: float | None) -> list[Bottleneck]:
    """Return the longest jobs with their share of the wall time and their slowest step."""
    ran = sorted((job for job in jobs if job.has_run), key=lambda job: job.duration_s or 0.0, reverse=True)
    bottlenecks = []
    for job in ran[:MAX_BOTTLENECKS]:
        share = (job.duration_s or 0.0) / wall_s if wall_s else 0.0
        timed = [step for step in job.steps if step.duration_s is not None]
        slowest = max(timed, key=lambda step: step.duration_s or 0.0) if timed else None
        bottlenecks.append(Bottleneck(job=job, share=min(share, 1.0), slowest_step=slowest))
    return bottlenecks


def load_jobs(session: Session, run: WorkflowRun, attempt: int, config: RepoConfig) -> list[JobTiming]:
    """Read the jobs and steps of one run attempt, staged by the repository configuration."""
    jobs = [job for job in queries.list_jobs(session=session, run_ids=[run.id]) if job.run_attempt == attempt]
    steps_by_job = defaultdict(list)
    for step in queries.list_steps(session=session, job_ids=[job.id for job in jobs]):
        steps_by_job[step.job_id].append(step)
    timings = []
    for job in jobs:
        stage = config.stage_of_job(run.workflow_name, job.name) or job.stage
        steps = [
            StepTiming(
                number=step.number,
                name=step.name,
                conclusion=step.conclusion,
                duration_s=step.duration_s,
                stage=config.stage_of_step(step.name),
            )
            for step in steps_by_job[job.id]
        ]
        timings.append(
            JobTiming(
                id=job.id, name=job.name, stage=stage, status=job.status, conclusion=job.conclusion,
                created_at=job.created_at, started_at=job.started_at, completed_at=job.completed_at,
                queue_s=job.queue_s, duration_s=job.duration_s, html_url=job.html_url, steps=steps,
            )
        )
    return timings


def baseline_samples(
    session: Session, run: WorkflowRun, base_branch: str, limit: int
) -> tuple[dict[str, list[float]], list[float], int]:
    """Return the base branch's job durations by job name, its run durations, and its run count."""
    baseline = github_app.list_baseline_runs(session=session, run=run, base_branch=base_branch, limit=limit)
    attempts = {base_run.id: base_attempt for base_run, base_attempt in baseline}
    run_durations = [attempt.duration_s for attempt in attempts.values() if attempt.duration_s is not None]
    by_name: dict[str, list[float]] = defaultdict(list)
    jobs: list[Job] = list(queries.list_jobs(session=session, run_ids=list(attempts)))
    for job in jobs:
        if job.run_attempt == attempts[job.run_id].attempt and job.conclusion == "success" and job.duration_s is not None:
            by_name[job.name].append(job.duration_s)
    return by_name, run_durations, len(baseline)


def profile_run(
    session: Session, run: WorkflowRun, attempt: RunAttempt, config: RepoConfig, base_branch: str | None
) -> WorkflowProfile:
    """Build the profile of one run attempt."""
    jobs = load_jobs(session, run, attempt.attempt, config)
    queues = [job.queue_s for job in jobs if job.queue_s is not None]
    profile = WorkflowProfile(
        workflow_name=run.workflow_name or run.workflow_path or f"workflow {run.workflow_id}",
        event=run.event,
        run_id=run.id,
        run_number=run.run_number,
        attempt=attempt.attempt,
        html_url=run.html_url,
        status=attempt.status,
        conclusion=attempt.conclusion,
        wall_s=attempt.duration_s,
        queue_s=sum(queues),
        max_queue_s=max(queues, default=0.0),
        execution_s=sum(job.duration_s for job in jobs if job.duration_s is not None),
        jobs=jobs,
        base_branch=base_branch,
    )
    profile.critical_path = estimate_critical_path(jobs)
    profile.bottlenecks = find_bottlenecks(jobs, profile.wall_s)
    if base_branch is None or attempt.status != "completed":
        return profile

    by_name, run_durations, count = baseline_samples(session, run, base_branch, config.regressions.baseline_runs)
    profile.baseline_runs = count
    for job in jobs:
        if job.duration_s is not None and job.conclusion == "success":
            comparison = compare(job.duration_s, by_name.get(job.name, []), config)
            if comparison is not None:
                profile.comparisons[job.id] = comparison
    if profile.wall_s is not None and attempt.conclusion == "success":
        profile.run_comparison = compare(profile.wall_s, run_durations, config)
    return profile


def profile_commit(
    session: Session, *, repo: str, head_sha: str, config: RepoConfig, base_branch: str | None
) -> list[WorkflowProfile]:
    """Profile the latest run of each workflow (and triggering event) for a commit, by workflow name."""
    latest: dict[tuple[object, str | None], WorkflowRun] = {}
    for run in github_app.list_runs_for_commit(session=session, repo=repo, head_sha=head_sha):
        latest[(run.workflow_id or run.workflow_name, run.event)] = run
    attempts = {
        (attempt.run_id, attempt.attempt): attempt
        for attempt in queries.list_attempts(session=session, run_ids=[run.id for run in latest.values()])
    }
    profiles = []
    for run in latest.values():
        attempt = attempts.get((run.id, run.latest_attempt))
        if attempt is None:
            continue
        profiles.append(profile_run(session, run, attempt, config, base_branch))
    return sorted(profiles, key=lambda profile: (profile.workflow_name.lower(), profile.event or ""))
