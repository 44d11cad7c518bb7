"""Write and aggregate metric points.

Statistics are computed by the database: count, sum, min, max and the sum of squares by one
aggregate query, percentiles by `percentile_cont` on PostgreSQL and by reading the two
neighbouring ordered values on SQLite. Both interpolate linearly between the closest ranks,
like `percentile_cont` and numpy's default method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlmodel import Session

from storage.models import Metric
from storage.types import utc_now

# Tags that are also columns, so filters on them can use an index.
COLUMN_TAGS = ("repo", "workflow", "branch", "conclusion")
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def upsert_metric(
    *,
    session: Session,
    name: str,
    metric_type: str,
    value: float,
    timestamp: datetime | None = None,
    tags: dict[str, str] | None = None,
    source_key: str | None = None,
) -> Metric:
    """Record a metric point; a point with the same source key is updated, not duplicated."""
    if not math.isfinite(value):
        raise ValueError(f"metric value must be a finite number, got {value!r}")
    tags = {str(key): str(tag) for key, tag in (tags or {}).items()}
    metric = None
    if source_key is not None:
        metric = session.scalars(select(Metric).where(Metric.source_key == source_key)).first()
    if metric is None:
        metric = Metric(name=name, metric_type=metric_type, value=value, source_key=source_key)
    metric.name = name
    metric.metric_type = metric_type
    metric.value = float(value)
    metric.timestamp = timestamp or utc_now()
    metric.tags = tags
    for column in COLUMN_TAGS:
        setattr(metric, column, tags.get(column))
    session.add(metric)
    return metric


@dataclass(frozen=True)
class MetricFilter:
    """Conditions that select metric points; a point must meet all of them."""

    metric_type: str | None = None
    name: str | None = None
    tags: dict[str, str] | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """Return the SQL conditions of this filter."""
        conditions: list[ColumnElement[bool]] = []
        if self.metric_type is not None:
            conditions.append(Metric.metric_type == self.metric_type)
        if self.name is not None:
            conditions.append(Metric.name == self.name)
        if self.since is not None:
            conditions.append(Metric.timestamp >= self.since)
        if self.until is not None:
            conditions.append(Metric.timestamp < self.until)
        for key, value in (self.tags or {}).items():
            if key in COLUMN_TAGS:
                conditions.append(getattr(Metric, key) == value)
            else:
                conditions.append(Metric.tags[key].as_string() == value)  # type: ignore[index]
        return conditions


EMPTY_STATISTICS: dict[str, Any] = {
    "count": 0,
    "mean": None,
    "min": None,
    "max": None,
    "total": 0.0,
    "stddev": None,
    **{name: None for name in PERCENTILES},
}


def calculate_statistics(*, session: Session, metric_filter: MetricFilter) -> dict[str, Any]:
    """Return count, mean, min, max, total, population stddev and p50/p90/p95/p99.

    With no matching points, count is 0, total is 0.0 and every other value is None.
    """
    where = and_(*metric_filter.conditions()) if metric_filter.conditions() else True
    count, total, minimum, maximum, squares = session.execute(
        select(
            func.count(Metric.value),
            func.sum(Metric.value),
            func.min(Metric.value),
            func.max(Metric.value),
            func.sum(Metric.value * Metric.value),
        ).where(where)
    ).one()
    if not count:
        return dict(EMPTY_STATISTICS)

    mean = total / count
    variance = max(0.0, squares / count - mean * mean)
    statistics: dict[str, Any] = {
        "count": count,
        "mean": mean,
        "min": minimum,
        "max": maximum,
        "total": total,
        "stddev": math.sqrt(variance),
    }
    if session.get_bind().dialect.name == "postgresql":
        statistics.update(_percentiles_postgresql(session, where))
    else:
        statistics.update(_percentiles_by_rank(session, where, count))
    return statistics


def _percentiles_postgresql(session: Session, where: Any) -> dict[str, float]:
    columns = [
        func.percentile_cont(fraction).within_group(Metric.value) for fraction in PERCENTILES.values()
    ]
    row = session.execute(select(*columns).where(where)).one()
    return {name: float(value) for name, value in zip(PERCENTILES, row, strict=True)}


def _percentiles_by_rank(session: Session, where: Any, count: int) -> dict[str, float]:
    result: dict[str, float] = {}
    for name, fraction in PERCENTILES.items():
        position = (count - 1) * fraction
        lower = math.floor(position)
        values = session.scalars(
            select(Metric.value).where(where).order_by(Metric.value).offset(lower).limit(2)
        ).all()
        if len(values) == 1 or position == lower:
            result[name] = float(values[0])
        else:
            result[name] = values[0] + (values[1] - values[0]) * (position - lower)
    return result
