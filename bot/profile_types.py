"""Data of a build profile: recorded stages, stages placed on the timeline, and comparisons.

Times on the timeline are seconds from the build's start; durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Stage:
    """One recorded stage; `key` is unique within its profiler (a job's is `job:<id>`)."""

    name: str
    duration: float
    started_at: datetime | None = None
    parent: str | None = None
    key: str = ""
    status: str | None = None
    job_id: int | None = None


@dataclass
class StageProfile:
    """A stage placed on the build's timeline, in seconds from the build's start."""

    stage: Stage
    label: str
    start: float
    end: float
    share: float = 0.0
    wall_share: float = 0.0
    on_critical_path: bool = False
    children: list[StageProfile] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def duration(self) -> float:
        return self.stage.duration

    def to_dict(self) -> dict[str, Any]:
        """Return the stage's profile as JSON-ready values."""
        return {
            "key": self.stage.key,
            "name": self.stage.name,
            "label": self.label,
            "status": self.stage.status,
            "job_id": self.stage.job_id,
            "duration_s": self.stage.duration,
            "start_s": self.start,
            "end_s": self.end,
            "share": self.share,
            "wall_share": self.wall_share,
            "on_critical_path": self.on_critical_path,
            "children": [child.to_dict() for child in self.children],
        }


@dataclass
class BuildProfile:
    """The placed stages of a build with its wall time and critical path."""

    stages: list[StageProfile]
    wall_time: float
    stage_time: float
    critical_path: list[StageProfile]

    @property
    def critical_path_time(self) -> float:
        return sum(stage.duration for stage in self.critical_path)

    @property
    def waiting_time(self) -> float:
        return max(0.0, self.wall_time - self.critical_path_time)

    @property
    def parallelism(self) -> float | None:
        return self.stage_time / self.wall_time if self.wall_time > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as JSON-ready values."""
        return {
            "wall_time_s": self.wall_time,
            "stage_time_s": self.stage_time,
            "critical_path_s": self.critical_path_time,
            "waiting_s": self.waiting_time,
            "parallelism": self.parallelism,
            "critical_path": [stage.label for stage in self.critical_path],
            "stages": [stage.to_dict() for stage in self.stages],
        }


@dataclass
class StageChange:
    """One stage's duration in two builds; None where a build lacks the stage."""

    label: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    @property
    def percent(self) -> float | None:
        delta = self.delta
        return None if delta is None or not self.before else delta / self.before * 100


@dataclass
class BuildComparison:
    """A build against an earlier one, or against the median of recent successful builds."""

    wall_before: float | None
    wall_after: float
    stages: list[StageChange]
    baseline_runs: int | None = None

    @property
    def wall_delta(self) -> float | None:
        return None if self.wall_before is None else self.wall_after - self.wall_before

    @property
    def wall_percent(self) -> float | None:
        delta = self.wall_delta
        return None if delta is None or not self.wall_before else delta / self.wall_before * 100

    def to_dict(self) -> dict[str, Any]:
        """Return the comparison as JSON-ready values."""
        return {
            "wall_before_s": self.wall_before,
            "wall_after_s": self.wall_after,
            "wall_delta_s": self.wall_delta,
            "wall_percent": self.wall_percent,
            "baseline_runs": self.baseline_runs,
            "stages": [
                {"label": c.label, "before_s": c.before, "after_s": c.after, "delta_s": c.delta, "percent": c.percent}
                for c in self.stages
            ],
        }
