"""Metric statistics against references computed here: exact percentiles (numpy's default linear
interpolation), the histogram estimate within its 0.5 % bound, window edges, and rollups that
follow updates and deletions."""

from __future__ import annotations

import math
import random
import statistics as pystats
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from storage import metric_rollups, metrics
from storage.db import session_scope
from storage.metric_stats import split_window
from storage.metrics import MetricFilter, calculate_statistics
from storage.models_release import MetricRollup, MetricRollupBucket

START = datetime(2024, 6, 1, tzinfo=UTC)
REPO = "octo-org/widget"


def reference_percentile(values: list[float], fraction: float) -> float:
    """numpy.percentile(values, fraction * 100) with its default `linear` method."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def record(session: Session, value: float, moment: datetime, **extra: object) -> None:
    tags = {"repo": REPO, **extra.pop("tags", {})}  # type: ignore[dict-item]
    metrics.upsert_metric(
        session=session, name="build_time", metric_type="build_time", value=value, timestamp=moment, tags=tags, **extra  # type: ignore[arg-type]
    )


def stats_for(engine: Engine, metric_filter: MetricFilter, **kwargs: int) -> dict[str, object]:
    with session_scope(engine) as session:
        return calculate_statistics(session=session, metric_filter=metric_filter, **kwargs)


def random_points(engine: Engine, count: int = 400, days: int = 10) -> list[tuple[datetime, float]]:
    rng = random.Random(7)
    points = []
    with session_scope(engine) as session:
        for _ in range(count):
            moment = START + timedelta(seconds=rng.uniform(0, days * 86_400))
            value = round(rng.lognormvariate(math.log(300), 0.7), 3)
            points.append((moment, value))
            record(session, value, moment)
    return points


def test_statistics_known_values(engine: Engine) -> None:
    with session_scope(engine) as session:
        for day, value in enumerate(range(1, 11)):
            record(session, float(value), START + timedelta(days=day, hours=5))

    result = stats_for(engine, MetricFilter(metric_type="build_time", tags={"repo": REPO}))

    assert result["count"] == 10
    assert result["total"] == 55.0
    assert result["mean"] == 5.5
    assert result["min"] == 1.0
    assert result["max"] == 10.0
    assert result["p50"] == pytest.approx(5.5, abs=1e-12)
    assert result["p90"] == pytest.approx(9.1, abs=1e-12)
    assert result["p95"] == pytest.approx(9.55, abs=1e-12)
    assert result["p99"] == pytest.approx(9.91, abs=1e-12)
    assert result["stddev"] == pytest.approx(math.sqrt(8.25), rel=1e-12)
    assert result["percentiles_exact"] is True


def test_stddev_is_population(engine: Engine) -> None:
    with session_scope(engine) as session:
        for index, value in enumerate([2, 4, 4, 4, 5, 5, 7, 9]):
            record(session, float(value), START + timedelta(hours=index))

    result = stats_for(engine, MetricFilter(metric_type="build_time"))

    assert result["stddev"] == pytest.approx(2.0, rel=1e-12)
    assert result["stddev"] != pytest.approx(pystats.stdev([2, 4, 4, 4, 5, 5, 7, 9]), rel=1e-3)


def test_statistics_empty_result(engine: Engine) -> None:
    result = stats_for(engine, MetricFilter(metric_type="build_time", tags={"repo": REPO}))

    assert result == {
        "count": 0, "mean": None, "min": None, "max": None, "total": 0.0, "stddev": None,
        "p50": None, "p90": None, "p95": None, "p99": None, "percentiles_exact": True,
    }


def test_window_exact_against_reference(engine: Engine) -> None:
    points = random_points(engine)
    since = START + timedelta(days=2, hours=7, minutes=13)
    until = START + timedelta(days=8, hours=15, minutes=2)
    selected = [value for moment, value in points if since <= moment < until]

    result = stats_for(engine, MetricFilter(metric_type="build_time", tags={"repo": REPO}, since=since, until=until))

    assert result["count"] == len(selected)
    assert result["total"] == pytest.approx(math.fsum(selected), rel=1e-12)
    assert result["mean"] == pytest.approx(pystats.fmean(selected), rel=1e-12)
    assert result["min"] == min(selected)
    assert result["max"] == max(selected)
    assert result["stddev"] == pytest.approx(pystats.pstdev(selected), rel=1e-9)
    for name, fraction in metrics.PERCENTILES.items():
        assert result[name] == pytest.approx(reference_percentile(selected, fraction), abs=1e-9), name
    assert result["percentiles_exact"] is True


def test_histogram_estimate_within_bound(engine: Engine) -> None:
    points = random_points(engine)
    since = START + timedelta(days=1, hours=20)
    selected = [value for moment, value in points if moment >= since]

    result = stats_for(
        engine, MetricFilter(metric_type="build_time", tags={"repo": REPO}, since=since), exact_limit=0
    )

    assert result["percentiles_exact"] is False
    assert result["count"] == len(selected)
    assert result["min"] == min(selected)
    assert result["max"] == max(selected)
    assert result["mean"] == pytest.approx(pystats.fmean(selected), rel=1e-12)
    for name, fraction in metrics.PERCENTILES.items():
        exact = reference_percentile(selected, fraction)
        assert abs(result[name] - exact) <= metric_rollups.RELATIVE_ACCURACY * exact, name  # type: ignore[operator]


def test_histogram_negative_and_zero_values(engine: Engine) -> None:
    values = [-5.0, -1.0, 0.0, 0.0, 2.0, 8.0, 8.5, 9.0, 12.0, 40.0]
    with session_scope(engine) as session:
        for index, value in enumerate(values):
            metrics.upsert_metric(
                session=session, name="delta", metric_type="custom", value=value, timestamp=START + timedelta(hours=index)
            )

    result = stats_for(engine, MetricFilter(metric_type="custom"), exact_limit=0)

    for name, fraction in metrics.PERCENTILES.items():
        exact = reference_percentile(values, fraction)
        assert abs(result[name] - exact) <= metric_rollups.RELATIVE_ACCURACY * abs(exact), name  # type: ignore[operator]
    assert result["min"] == -5.0
    assert result["max"] == 40.0


def test_other_tag_filter_reads_points(engine: Engine) -> None:
    with session_scope(engine) as session:
        for index, value in enumerate([10.0, 20.0, 30.0, 40.0]):
            record(session, value, START + timedelta(hours=index), tags={"suite": "unit" if index % 2 else "e2e"})

    result = stats_for(engine, MetricFilter(metric_type="build_time", tags={"suite": "unit"}))

    assert result["count"] == 2
    assert result["mean"] == 30.0
    assert result["p50"] == 30.0


def rollup_rows(engine: Engine) -> list[tuple[object, ...]]:
    with Session(engine) as session:
        rollups = session.execute(
            select(MetricRollup.metric_type, MetricRollup.repo, MetricRollup.day, MetricRollup.count,
                   MetricRollup.min_value, MetricRollup.max_value).order_by(MetricRollup.day)
        ).all()
        buckets = session.execute(
            select(MetricRollup.day, MetricRollupBucket.bucket, MetricRollupBucket.count)
            .join(MetricRollup, MetricRollup.id == MetricRollupBucket.rollup_id)
            .order_by(MetricRollup.day, MetricRollupBucket.bucket)
        ).all()
    return [tuple(row) for row in rollups] + [tuple(row) for row in buckets]


def test_rollups_follow_updates(engine: Engine) -> None:
    with session_scope(engine) as session:
        record(session, 5.0, START + timedelta(hours=1), source_key="a")
        record(session, 7.0, START + timedelta(hours=2), source_key="b")
        record(session, 9.0, START + timedelta(hours=3), source_key="c")
    with session_scope(engine) as session:
        # The day's minimum grows, and one point moves to the next day.
        record(session, 6.0, START + timedelta(hours=1), source_key="a")
        record(session, 11.0, START + timedelta(days=1, hours=3), source_key="c")
        # Processing the same fact again changes nothing.
        record(session, 7.0, START + timedelta(hours=2), source_key="b")

    incremental = rollup_rows(engine)
    with session_scope(engine) as session:
        metric_rollups.rebuild_rollups(session)

    assert incremental == rollup_rows(engine)
    result = stats_for(engine, MetricFilter(metric_type="build_time", tags={"repo": REPO}), exact_limit=0)
    assert result["count"] == 3
    assert result["min"] == 6.0
    assert result["max"] == 11.0
    assert result["total"] == 24.0


def test_delete_metrics_keeps_derived(engine: Engine) -> None:
    with session_scope(engine) as session:
        record(session, 5.0, START, source_key="build_time:run:1:1")
        record(session, 50.0, START + timedelta(hours=1))
    with session_scope(engine) as session:
        deleted = metrics.delete_metrics(session=session, metric_filter=MetricFilter(metric_type="build_time"))

    assert deleted == 1
    result = stats_for(engine, MetricFilter(metric_type="build_time"), exact_limit=0)
    assert result["count"] == 1
    assert result["max"] == 5.0


@pytest.mark.parametrize(
    ("since", "until", "first_day", "end_day", "edges"),
    [
        (None, None, None, None, 0),
        (datetime(2024, 6, 1, tzinfo=UTC), None, datetime(2024, 6, 1).date(), None, 0),
        (datetime(2024, 6, 1, 12, tzinfo=UTC), None, datetime(2024, 6, 2).date(), None, 1),
        (datetime(2024, 6, 1, 12, tzinfo=UTC), datetime(2024, 6, 5, 3, tzinfo=UTC), datetime(2024, 6, 2).date(), datetime(2024, 6, 5).date(), 2),
        (datetime(2024, 6, 1, 12, tzinfo=UTC), datetime(2024, 6, 1, 18, tzinfo=UTC), datetime(2024, 6, 2).date(), datetime(2024, 6, 2).date(), 1),
    ],
)
def test_split_window_edges(since, until, first_day, end_day, edges) -> None:  # type: ignore[no-untyped-def]
    first, end, parts = split_window(since, until)

    assert first == first_day
    assert end == end_day
    assert len(parts) == edges


def test_rebuild_from_day_only(engine: Engine) -> None:
    with session_scope(engine) as session:
        for day in range(3):
            record(session, 10.0 + day, START + timedelta(days=day, hours=6))
    with session_scope(engine) as session:
        session.execute(MetricRollup.__table__.update().values(count=99))  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        metric_rollups.rebuild_rollups(session, first_day=(START + timedelta(days=1)).date())

    with Session(engine) as session:
        counts = dict(session.execute(select(MetricRollup.day, MetricRollup.count).order_by(MetricRollup.day)).all())
    assert list(counts.values()) == [99, 1, 1]
