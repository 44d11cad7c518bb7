"""The data the Slack messages show, gathered by the command handlers and drawn by the renderers.

Text here is raw (as GitHub sent it); the renderers escape it. Durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

RUNNING_STATUSES = frozenset({"in_progress"})
WAITING_STATUSES = frozenset({"queued", "waiting", "pending", "requested"})


@dataclass
class JobRow:
    """One job of a run attempt. `ordinal` numbers the jobs of the run that share its name (1, 2, 3...)."""

    job_id: int
    name: str
    stage: str
    status: str
    conclusion: str | None = None
    duration_s: float | None = None
    queue_s: float | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    html_url: str | None = None
    runner_name: str | None = None
    ordinal: int | None = None
    baseline_s: float | None = None

    @property
    def is_running(self) -> bool:
        """Whether the job is on a runner now; a completed job never is."""
        return self.status in RUNNING_STATUSES


@dataclass
class RunSummary:
    """A run's latest attempt with its jobs."""

    run_id: int
    repo: str
    workflow: str | None
    run_number: int | None
    branch: str | None
    event: str | None
    title: str | None
    actor: str | None
    html_url: str | None
    attempt: int
    status: str
    conclusion: str | None
    duration_s: float | None
    started_at: datetime | None
    completed_at: datetime | None
    jobs: list[JobRow] = field(default_factory=list)

    @property
    def running_jobs(self) -> list[JobRow]:
        """Jobs running now; none once the attempt has completed."""
        if self.status == "completed":
            return []
        return [job for job in self.jobs if job.is_running]

    @property
    def waiting_jobs(self) -> list[JobRow]:
        """Jobs queued or waiting for a runner or an approval."""
        if self.status == "completed":
            return []
        return [job for job in self.jobs if job.status in WAITING_STATUSES]


@dataclass
class StageRow:
    """One stage of a run (build, test, publish, deploy: its jobs summed) or of a release dashboard.

    A dashboard stage has no job count; it may carry the message a script reported and a link.
    """

    name: str
    job_count: int | None
    status: str
    job_time_s: float | None
    wall_s: float | None
    message: str | None = None
    html_url: str | None = None


@dataclass
class ReleaseInfo:
    """A GitHub release."""

    tag: str
    name: str | None
    state: str
    author: str | None
    html_url: str | None
    published_at: datetime | None
    prerelease: bool = False


@dataclass
class AppProblems:
    """The GitHub App problems of a repository, from storage.github_app.describe_repository.

    Each missing permission has `permission` (as `pull_requests=write`) and `operation`. Each
    configuration problem has `file`, `key` and `reason`.
    """

    installation_id: int | None
    blocked_reason: str | None = None
    missing_permissions: list[dict[str, str]] = field(default_factory=list)
    config_problems: list[dict[str, str]] = field(default_factory=list)

    @property
    def has_problems(self) -> bool:
        """Whether there is anything to report."""
        return bool(self.blocked_reason or self.missing_permissions or self.config_problems)


@dataclass
class RepoStatus:
    """The dashboard of one repository: its release (if any), stages, runs and running jobs."""

    repo: str
    version: str | None
    release: ReleaseInfo | None
    stages: list[StageRow]
    runs: list[RunSummary]
    notice: str | None = None
    # The release dashboard's overall status (bot.dashboard.overall_status), when it has one.
    overall: str | None = None
    # Set only when the GitHub App side has a problem to report.
    app_problems: AppProblems | None = None


@dataclass
class Bottleneck:
    """A slow job and its share of the run's wall time."""

    job: JobRow
    share: float
    on_critical_path: bool


@dataclass
class Baseline:
    """The median duration of the same workflow's earlier completed runs on the same branch."""

    branch: str
    run_count: int
    median_s: float
    delta_s: float


@dataclass
class RunProfile:
    """The breakdown of a run's time: stages, bottlenecks, critical path and the branch baseline."""

    run: RunSummary
    stages: list[StageRow]
    bottlenecks: list[Bottleneck]
    critical_path: list[JobRow]
    # The summed durations of the critical path's jobs; waiting between them is not counted.
    critical_path_s: float | None
    baseline: Baseline | None
    total_job_time_s: float


@dataclass
class StatsView:
    """Statistics of one metric over a window, and the change against the window before it."""

    metric: str
    repo: str | None
    workflow: str | None
    branch: str | None
    since: datetime
    until: datetime
    current: dict[str, float | int | None]
    previous: dict[str, float | int | None]
    failure_rate: float | None
    runs: int
    reruns: int
    # Conclusions counted per attempt, per run (its latest attempt in the window) and per job;
    # failing conclusions are summed under "failure".
    outcomes: dict[str, int]
    sparkline: str
    bucket_seconds: float
    latest_outcomes: dict[str, int] = field(default_factory=dict)
    job_outcomes: dict[str, int] = field(default_factory=dict)
    # Failures in the window whose commit passed later, on a re-run or another run.
    flaky_failures: int = 0


@dataclass
class SubscriptionRow:
    """One subscription as listed to people."""

    channel_id: str
    repo: str
    events: str
    branch: str
    workflow: str
    # Why failure alerts to this subscription are paused (a Slack error, an uninstall), if they are.
    paused: str | None = None


@dataclass
class RepoLine:
    """One repository in a list of followed repositories: its latest release and run."""

    repo: str
    release_tag: str | None
    latest_run: RunSummary | None
    notice: str | None = None
