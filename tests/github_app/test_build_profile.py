"""Build-profile arithmetic: the two-margin comparison with the base branch, the estimated
critical path and the bottlenecks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.build_profile import (
    FASTER,
    SLOWER,
    UNCHANGED,
    JobTiming,
    StepTiming,
    compare,
    estimate_critical_path,
    find_bottlenecks,
)
from bot.repo_config import Regressions, RepoConfig

T0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
DEFAULTS = RepoConfig()


def job(job_id: int, start: float, end: float | None, *, steps: list[tuple[str, float]] = ()) -> JobTiming:
    started = T0 + timedelta(seconds=start)
    completed = T0 + timedelta(seconds=end) if end is not None else None
    return JobTiming(
        id=job_id, name=f"job {job_id}", stage="build", status="completed",
        conclusion="success" if end is not None else "skipped",
        created_at=started, started_at=started if end is not None else None, completed_at=completed,
        queue_s=0.0, duration_s=(end - start) if end is not None else None, html_url=None,
        steps=[StepTiming(number=n, name=name, conclusion="success", duration_s=seconds) for n, (name, seconds) in enumerate(steps, 1)],
    )


@pytest.mark.parametrize(
    ("current", "samples", "verdict"),
    [
        (160.0, [100.0, 100.0, 100.0], SLOWER),
        (40.0, [100.0, 90.0, 110.0], FASTER),
        (115.0, [100.0, 100.0, 100.0], UNCHANGED),  # +15 %, +15 s: past neither margin
        (125.0, [100.0, 100.0, 100.0], UNCHANGED),  # +25 %, but only +25 s
        (1100.0, [1000.0, 1000.0, 1000.0], UNCHANGED),  # +100 s, but only +10 %
        (131.0, [80.0, 100.0, 300.0], SLOWER),  # the median, not the mean, is the baseline
    ],
)
def test_compare_needs_both_margins(current: float, samples: list[float], verdict: str) -> None:
    comparison = compare(current, samples, DEFAULTS)
    assert comparison is not None
    assert comparison.verdict == verdict
    assert comparison.samples == len(samples)


def test_compare_needs_three_samples() -> None:
    assert compare(500.0, [100.0, 100.0], DEFAULTS) is None
    one_run = RepoConfig(regressions=Regressions(baseline_runs=1))
    comparison = compare(500.0, [100.0], one_run)
    assert comparison is not None
    assert comparison.verdict == SLOWER
    assert comparison.delta_s == 400.0
    assert comparison.change == 4.0


def test_critical_path_follows_waits() -> None:
    lint = job(1, 0, 30)
    build = job(2, 0, 100)
    test = job(3, 101, 200)
    docs = job(4, 105, 150)
    skipped = job(5, 0, None)
    path = estimate_critical_path([lint, build, test, docs, skipped])
    assert [item.id for item in path] == [2, 3]


def test_critical_path_empty_without_runs() -> None:
    assert estimate_critical_path([job(1, 0, None)]) == []


def test_bottlenecks_longest_first() -> None:
    jobs = [job(1, 0, 30), job(2, 0, 100, steps=[("setup", 10), ("compile", 80)]), job(3, 0, 60), job(4, 0, 10)]
    bottlenecks = find_bottlenecks(jobs, wall_s=200.0)
    assert [b.job.id for b in bottlenecks] == [2, 3, 1]
    assert bottlenecks[0].share == 0.5
    assert bottlenecks[0].slowest_step.name == "compile"
