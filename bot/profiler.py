"""BuildProfiler: the stages of a build, its critical path, its bottlenecks and comparisons.

Timeline: a stage with `started_at` sits at that time. A stage without one starts when every
stage recorded before it has ended, so stages recorded one after another run in sequence. Mix
the two only with care: give `started_at` for all stages or for none. Child stages (a job's
steps, or stages recorded with `parent`) sit inside their parent and do not count on their own.

Wall time runs from the first top-level stage's start to the last one's end.

Critical path: start from the stage that ends last, then repeatedly step back to the stage
that ended last at or before the current one started. That chain decided the wall time; the
time between its stages was spent waiting (for a runner, or for nothing recorded).

Share: a stage's seconds on the critical path divided by the wall time, and 0 for a stage off
the path, however long it ran, because shortening it would not shorten the build. Three
parallel jobs of 60, 120 and 180 s get shares 0, 0 and 1.0, never 1/6, 1/3 and 1/2 of their
summed 360 s. `wall_share` is a stage's own duration over the wall time, on the path or not.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from datetime import datetime

from sqlalchemy import Engine

from bot.engines import resolve_engine
from bot.errors import NotFound
from bot.profile_types import BuildComparison, BuildProfile, Stage, StageChange, StageProfile
from storage import profiles
from storage.db import session_scope
from storage.metric_filter import as_utc
from storage.models import Job
from storage.types import utc_now

REPORT_FORMATS = ("text", "markdown")


def check_duration(duration: object) -> float:
    """Return a stage duration in seconds, or raise ValueError unless it is finite and not negative."""
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise ValueError(f"invalid stage duration {duration!r}: expected seconds as an int or float")
    seconds = float(duration)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid stage duration {duration!r}: expected a finite number of seconds, 0 or more")
    return seconds


def unique_labels(stages: list[Stage]) -> dict[str, str]:
    """Label stages by name, telling apart siblings of the same name by job id or by ordinal."""
    counts = Counter((stage.parent, stage.name) for stage in stages)
    seen: Counter[tuple[str | None, str]] = Counter()
    labels = {}
    for stage in stages:
        group = (stage.parent, stage.name)
        seen[group] += 1
        if counts[group] == 1:
            labels[stage.key] = stage.name
        elif stage.job_id is not None:
            labels[stage.key] = f"{stage.name} (job {stage.job_id})"
        else:
            labels[stage.key] = f"{stage.name} #{seen[group]}"
    return labels


def place(stages: list[Stage], origin: datetime | None, floor: float) -> dict[str, tuple[float, float]]:
    """Place stages on the timeline: at `started_at` when given, else after all earlier ones."""
    placed: dict[str, tuple[float, float]] = {}
    frontier = floor
    for stage in stages:
        if stage.started_at is not None and origin is not None:
            start = (as_utc(stage.started_at) - origin).total_seconds()  # type: ignore[operator]
        else:
            start = frontier
        placed[stage.key] = (start, start + stage.duration)
        frontier = max(frontier, start + stage.duration)
    return placed


def trace_critical_path(items: list[StageProfile]) -> list[StageProfile]:
    """Walk back from the stage that ends last through the latest-ending predecessors."""
    candidates = [item for item in items if item.duration > 0] or list(items)
    if not candidates:
        return []
    order = {id(item): index for index, item in enumerate(candidates)}

    def rank(item: StageProfile) -> tuple[float, float, int]:
        return (item.end, item.duration, order[id(item)])

    current = max(candidates, key=rank)
    path = [current]
    on_path = {id(current)}
    while True:
        earlier = [
            item for item in candidates if item.end <= current.start + 1e-9 and id(item) not in on_path
        ]
        if not earlier:
            break
        current = max(earlier, key=rank)
        path.append(current)
        on_path.add(id(current))
    return list(reversed(path))


class BuildProfiler:
    """Collects stage timings of one build and analyses them; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        repo: str | None = None,
        workflow: str | None = None,
        branch: str | None = None,
        engine: Engine | None = None,
        database_url: str | None = None,
    ) -> None:
        self.repo = repo.lower() if repo else None
        self.workflow = workflow
        self.workflow_id: int | None = None
        self.branch = branch
        self.run_id: int | None = None
        self.attempt: int | None = None
        self._engine = engine
        self._database_url = database_url
        self.stages: list[Stage] = []
        self._keys: set[str] = set()

    def record_stage(
        self,
        name: str,
        duration: float,
        *,
        started_at: datetime | None = None,
        parent: Stage | str | None = None,
    ) -> Stage:
        """Add a stage of `duration` seconds; `parent` is a Stage, a stage key or a unique stage name."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"invalid stage name {name!r}: expected a non-empty string")
        seconds = check_duration(duration)
        if started_at is not None and not isinstance(started_at, datetime):
            raise ValueError(f"invalid started_at {started_at!r}: expected a datetime")
        stage = Stage(
            name=name,
            duration=seconds,
            started_at=as_utc(started_at),
            parent=self._parent_key(parent),
            key=f"stage:{len(self.stages) + 1}",
        )
        return self._add(stage)

    def _add(self, stage: Stage) -> Stage:
        self.stages.append(stage)
        self._keys.add(stage.key)
        return stage

    def _parent_key(self, parent: Stage | str | None) -> str | None:
        if parent is None:
            return None
        if isinstance(parent, Stage):
            if parent.key not in self._keys:
                raise ValueError(f"parent stage {parent.name!r} was not recorded by this profiler")
            return parent.key
        if parent in self._keys:
            return parent
        matches = [stage.key for stage in self.stages if stage.name == parent]
        if len(matches) != 1:
            found = "no stage" if not matches else f"{len(matches)} stages"
            raise ValueError(f"invalid parent {parent!r}: {found} by that name; pass the Stage object or its key")
        return matches[0]

    @classmethod
    def from_run(
        cls,
        run_id: int,
        attempt: int | None = None,
        *,
        engine: Engine | None = None,
        database_url: str | None = None,
    ) -> BuildProfiler:
        """Build a profiler from a stored run attempt: one stage per job, its steps as child stages.

        Without `attempt`, the latest attempt with jobs. Raises NotFound for an unknown run.
        """
        resolved = resolve_engine(engine, database_url)
        with session_scope(resolved) as session:
            loaded = profiles.load_attempt_jobs(session=session, run_id=run_id, attempt=attempt)
        if loaded is None:
            raise NotFound(f"run {run_id} not found: the bot has received no workflow_run or workflow_job event for it")
        profiler = cls.from_jobs(loaded, engine=resolved)
        return profiler

    @classmethod
    def from_jobs(cls, loaded: profiles.AttemptJobs, *, engine: Engine | None = None) -> BuildProfiler:
        """Build a profiler from jobs and steps already read from the database."""
        run = loaded.run
        profiler = cls(repo=run.repo, workflow=run.workflow_name, branch=run.head_branch, engine=engine)
        profiler.workflow_id = run.workflow_id
        profiler.run_id = run.id
        profiler.attempt = loaded.attempt
        for job in loaded.jobs:
            job_stage = profiler._add(
                Stage(
                    name=job.name,
                    duration=job_duration(job),
                    started_at=as_utc(job.started_at or job.completed_at or job.created_at),
                    key=f"job:{job.id}",
                    status=job.conclusion or job.status,
                    job_id=job.id,
                )
            )
            for step in loaded.steps.get(job.id, []):
                profiler._add(
                    Stage(
                        name=step.name,
                        duration=step.duration_s or 0.0,
                        started_at=as_utc(step.started_at),
                        parent=job_stage.key,
                        key=f"job:{job.id}:step:{step.number}",
                        status=step.conclusion or step.status,
                    )
                )
        return profiler

    def profile_build(self) -> BuildProfile:
        """Place the stages on the timeline and find the critical path and each stage's share."""
        labels = unique_labels(self.stages)
        starts = [as_utc(stage.started_at) for stage in self.stages if stage.started_at is not None]
        origin = min(starts) if starts else None  # type: ignore[type-var]
        top = [stage for stage in self.stages if stage.parent is None]
        placed = place(top, origin, 0.0)
        shift = min((start for start, _ in placed.values()), default=0.0)

        children: dict[str, list[Stage]] = defaultdict(list)
        for stage in self.stages:
            if stage.parent is not None:
                children[stage.parent].append(stage)

        def build(stage: Stage, start: float, end: float) -> StageProfile:
            profile = StageProfile(stage=stage, label=labels[stage.key], start=start - shift, end=end - shift)
            inner = place(children.get(stage.key, []), origin, start)
            profile.children = [
                build(child, *inner[child.key]) for child in children.get(stage.key, [])
            ]
            return profile

        items = [build(stage, *placed[stage.key]) for stage in top]
        items.sort(key=lambda item: (item.start, item.end))
        wall = max((item.end for item in items), default=0.0) - min((item.start for item in items), default=0.0)
        path = trace_critical_path(items)
        for item in items:
            item.wall_share = item.duration / wall if wall > 0 else 0.0
        for item in path:
            item.on_critical_path = True
            item.share = item.duration / wall if wall > 0 else 0.0
        return BuildProfile(
            stages=items,
            wall_time=wall,
            stage_time=sum(item.duration for item in items),
            critical_path=path,
        )

    def critical_path(self) -> list[StageProfile]:
        """Return the stages on the critical path, in time order."""
        return self.profile_build().critical_path

    def get_bottlenecks(self, threshold: float = 0.1) -> list[StageProfile]:
        """Return the critical-path stages whose share of the wall time is at least `threshold`, largest first."""
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ValueError(f"invalid threshold {threshold!r}: expected a fraction from 0 to 1, such as 0.1")
        path = self.critical_path()
        return sorted((item for item in path if item.share >= threshold), key=lambda item: -item.share)

    def compare_builds(self, other: BuildProfiler) -> BuildComparison:
        """Compare this build (after) with `other` (before), stage by stage, matching names in order."""
        if not isinstance(other, BuildProfiler):
            raise ValueError(f"invalid build to compare with {other!r}: expected a BuildProfiler")
        before, after = other.profile_build(), self.profile_build()
        before_durations = comparable_durations(before)
        after_durations = comparable_durations(after)
        labels = list(after_durations) + [label for label in before_durations if label not in after_durations]
        return BuildComparison(
            wall_before=before.wall_time,
            wall_after=after.wall_time,
            stages=[StageChange(label, before_durations.get(label), after_durations.get(label)) for label in labels],
        )

    def compare_to_baseline(self, branch: str | None = None, last_n: int = 20) -> BuildComparison:
        """Compare this build with the median of the last `last_n` successful runs of its workflow on `branch`.

        `branch` defaults to this build's branch. The baseline's stage durations and wall time
        are medians per stage name over those runs; `baseline_runs` is how many were found.
        """
        branch = branch or self.branch
        if not self.repo or not (self.workflow or self.workflow_id):
            raise ValueError("compare_to_baseline needs the build's repo and workflow: use from_run or pass repo= and workflow=")
        if not branch:
            raise ValueError("compare_to_baseline needs a branch: pass branch=, such as 'main'")
        if isinstance(last_n, bool) or not isinstance(last_n, int) or last_n < 1:
            raise ValueError(f"invalid last_n {last_n!r}: expected a positive integer")
        engine = resolve_engine(self._engine, self._database_url)
        with session_scope(engine) as session:
            keys = profiles.recent_successful_attempts(
                session=session,
                repo=self.repo,
                workflow_name=self.workflow,
                workflow_id=self.workflow_id,
                branch=branch,
                last_n=last_n,
                exclude_run_id=self.run_id,
            )
            loaded = profiles.load_many(session=session, keys=keys)

        samples: dict[str, list[float]] = defaultdict(list)
        walls = []
        for entry in loaded:
            profile = BuildProfiler.from_jobs(entry).profile_build()
            walls.append(profile.wall_time)
            for label, duration in comparable_durations(profile).items():
                samples[label].append(duration)
        after = self.profile_build()
        after_durations = comparable_durations(after)
        labels = list(after_durations) + [label for label in samples if label not in after_durations]
        return BuildComparison(
            wall_before=statistics.median(walls) if walls else None,
            wall_after=after.wall_time,
            stages=[
                StageChange(
                    label,
                    statistics.median(samples[label]) if samples.get(label) else None,
                    after_durations.get(label),
                )
                for label in labels
            ],
            baseline_runs=len(loaded),
        )

    def generate_report(self, format: str = "text") -> str:  # the release guide names it `format`
        """Render the profile as plain text or as GitHub Markdown (names escaped)."""
        from bot import profile_report

        if format not in REPORT_FORMATS:
            raise ValueError(f"invalid report format {format!r}: use 'text' or 'markdown'")
        profile = self.profile_build()
        title = self.title()
        if format == "markdown":
            return profile_report.render_markdown(profile, title=title)
        return profile_report.render_text(profile, title=title)

    def title(self) -> str:
        """Return what the report is about: repo, workflow, run and attempt when known."""
        parts = [part for part in (self.repo, self.workflow) if part]
        if self.run_id is not None:
            parts.append(f"run {self.run_id}" + (f" attempt {self.attempt}" if self.attempt else ""))
        return " ".join(parts) if parts else "build"


def job_duration(job: Job) -> float:
    """Return a job's execution seconds: stored when finished, elapsed while running, else 0."""
    if job.duration_s is not None:
        return job.duration_s
    if job.status == "in_progress" and job.started_at is not None:
        return max(0.0, (utc_now() - as_utc(job.started_at)).total_seconds())  # type: ignore[operator]
    return 0.0


def comparable_durations(profile: BuildProfile) -> dict[str, float]:
    """Return top-level durations keyed by name, with `#n` for repeated names (job ids differ between runs)."""
    counts = Counter(item.name for item in profile.stages)
    seen: Counter[str] = Counter()
    durations = {}
    for item in profile.stages:
        seen[item.name] += 1
        label = item.name if counts[item.name] == 1 else f"{item.name} #{seen[item.name]}"
        durations[label] = item.duration
    return durations
