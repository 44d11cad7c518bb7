"""Statistics of metric points, computed by the database.

Count, sum, min, max and the sum of squares come from the daily rollups for the whole UTC days
inside the window, plus one aggregate query over the stored points of the partial days at its
edges. Filters the rollups cannot serve (other tags, a metric name) aggregate the points.

Percentiles interpolate linearly between the closest ranks, like `percentile_cont` and numpy's
default method. Up to `exact_limit` points they are exact: `percentile_cont` on PostgreSQL, and
on SQLite the values at the needed ranks by `row_number()`. Above it they are estimated from the
histogram buckets, within RELATIVE_ACCURACY (0.5 %) of the exact value, and the result reports it
with `percentiles_exact: False`.

`stddev` is the population standard deviation (numpy's default, ddof=0), from the sum of
squares. Its absolute error is about 1e-8 times the mean, so a spread below that reads as noise.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlmodel import Session

from storage import metric_rollups
from storage.metric_filter import MetricFilter, as_utc
from storage.metric_rollups import Totals
from storage.models import Metric

PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
# Above this many points, percentiles come from the histogram; sorting this many values takes
# a few milliseconds on SQLite.
EXACT_PERCENTILE_LIMIT = 20_000

EMPTY_STATISTICS: dict[str, Any] = {
    "count": 0,
    "mean": None,
    "min": None,
    "max": None,
    "total": 0.0,
    "stddev": None,
    **{name: None for name in PERCENTILES},
    "percentiles_exact": True,
}


def split_window(
    since: datetime | None, until: datetime | None
) -> tuple[date | None, date | None, list[tuple[datetime | None, datetime | None]]]:
    """Split [since, until) into whole UTC days [first_day, end_day) and the partial edges.

    Returns the day range (None for an open end) and the time ranges left over; when the
    window contains no whole day, the day range is empty (first_day == end_day) and the single
    edge is the window itself.
    """
    since, until = as_utc(since), as_utc(until)
    first_day = None
    if since is not None:
        first_day = since.date() if since == metric_rollups.day_start(since.date()) else since.date() + timedelta(days=1)
    end_day = until.date() if until is not None else None

    if first_day is not None and end_day is not None and first_day >= end_day:
        return first_day, first_day, [(since, until)]
    edges: list[tuple[datetime | None, datetime | None]] = []
    if since is not None and first_day is not None and since < metric_rollups.day_start(first_day):
        edges.append((since, metric_rollups.day_start(first_day)))
    if until is not None and end_day is not None and until > metric_rollups.day_start(end_day):
        edges.append((metric_rollups.day_start(end_day), until))
    return first_day, end_day, edges


def calculate_statistics(
    *, session: Session, metric_filter: MetricFilter, exact_limit: int = EXACT_PERCENTILE_LIMIT
) -> dict[str, Any]:
    """Return count, mean, min, max, total, population stddev, p50/p90/p95/p99 and `percentiles_exact`.

    With no matching points, count is 0, total is 0.0, every other statistic is None and
    `percentiles_exact` is True.
    """
    use_rollups, repo = metric_filter.rollup_repo()
    metric_type = metric_filter.metric_type
    if use_rollups:
        first_day, end_day, edges = split_window(metric_filter.since, metric_filter.until)
        has_days = first_day is None or end_day is None or first_day < end_day
        rollup_conditions = metric_rollups.rollup_conditions(metric_type, repo, first_day, end_day)
        edge_conditions = [
            metric_rollups.and_conditions(metric_type, repo, start, end) for start, end in edges
        ]
        totals = metric_rollups.rollup_totals(session, rollup_conditions) if has_days else Totals()
        for conditions in edge_conditions:
            totals.add(metric_rollups.point_totals(session, conditions))
    else:
        totals = metric_rollups.point_totals(session, metric_filter.conditions())

    if totals.count == 0:
        return dict(EMPTY_STATISTICS)

    mean = totals.total / totals.count
    variance = max(0.0, totals.total_squares / totals.count - mean * mean)
    if totals.minimum == totals.maximum:
        variance = 0.0
    statistics: dict[str, Any] = {
        "count": totals.count,
        "mean": mean,
        "min": totals.minimum,
        "max": totals.maximum,
        "total": totals.total,
        "stddev": math.sqrt(variance),
    }

    if totals.count <= exact_limit:
        statistics.update(exact_percentiles(session, metric_filter.conditions(), totals.count))
        statistics["percentiles_exact"] = True
        return statistics

    if use_rollups:
        parts = [metric_rollups.rollup_histogram(session, rollup_conditions)] if has_days else []
        parts += [metric_rollups.point_histogram(session, conditions) for conditions in edge_conditions]
        histogram = metric_rollups.merge_histograms(parts)
    else:
        histogram = metric_rollups.point_histogram(session, metric_filter.conditions())
    statistics.update(
        metric_rollups.estimate_percentiles(
            histogram, PERCENTILES, minimum=float(totals.minimum), maximum=float(totals.maximum)  # type: ignore[arg-type]
        )
    )
    statistics["percentiles_exact"] = False
    return statistics


def exact_percentiles(session: Session, conditions: list[ColumnElement[bool]], count: int) -> dict[str, float]:
    """Return the exact p50/p90/p95/p99 of the matching points, `count` of them."""
    if session.get_bind().dialect.name == "postgresql":
        columns = [
            func.percentile_cont(fraction).within_group(Metric.value) for fraction in PERCENTILES.values()
        ]
        row = session.execute(select(*columns).where(*conditions)).one()
        return {name: float(value) for name, value in zip(PERCENTILES, row, strict=True)}

    ranks: set[int] = set()
    for fraction in PERCENTILES.values():
        lower = math.floor((count - 1) * fraction)
        ranks.update({lower, min(lower + 1, count - 1)})
    numbered = (
        select(Metric.value, func.row_number().over(order_by=Metric.value).label("rank"))
        .where(*conditions)
        .subquery()
    )
    rows = session.execute(
        select(numbered.c.rank, numbered.c.value).where(numbered.c.rank.in_([rank + 1 for rank in ranks]))
    ).all()
    values = {int(rank) - 1: float(value) for rank, value in rows}

    result: dict[str, float] = {}
    for name, fraction in PERCENTILES.items():
        position = (count - 1) * fraction
        lower = math.floor(position)
        upper = min(lower + 1, count - 1)
        result[name] = values[lower] + (values[upper] - values[lower]) * (position - lower)
    return result
