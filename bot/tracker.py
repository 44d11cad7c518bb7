"""MetricsTracker: record and read metric points in the bot's database from scripts and CI jobs.

Points recorded here and points the bot derives from webhooks live in the same `metric` table,
so both show in `/api/v1/stats`, the CLI and Slack.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from bot.engines import resolve_engine
from bot.periods import parse_since
from storage import metrics
from storage.db import session_scope
from storage.metric_filter import as_utc
from storage.models import Metric, MetricType

logger = logging.getLogger(__name__)

__all__ = ["MetricPoint", "MetricType", "MetricsTracker"]


@dataclass(frozen=True)
class MetricPoint:
    """One stored metric point."""

    id: int
    name: str
    metric_type: MetricType
    value: float
    timestamp: datetime
    tags: dict[str, str]

    @classmethod
    def from_row(cls, row: Metric) -> MetricPoint:
        """Build a point from its `metric` row."""
        return cls(
            id=int(row.id or 0),
            name=row.name,
            metric_type=MetricType(row.metric_type),
            value=row.value,
            timestamp=as_utc(row.timestamp),  # type: ignore[arg-type]
            tags=dict(row.tags or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the point as JSON-ready values (ISO 8601 UTC timestamp)."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.metric_type.value,
            "value": self.value,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "tags": dict(self.tags),
        }


def metric_type_value(metric_type: MetricType | str | None) -> str | None:
    """Return a metric type's stored value, or raise ValueError naming the known types."""
    if metric_type is None:
        return None
    return metrics.validate_metric_type(metric_type)


def time_bound(value: datetime | str | None, name: str) -> datetime | None:
    """Return a window bound: a datetime (naive means UTC) or text such as `7d` or an ISO 8601 time."""
    if value is None or isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        return parse_since(value)
    raise ValueError(f"invalid {name} {value!r}: expected a datetime, `7d`-style text or an ISO 8601 time")


class MetricsTracker:
    """Records metric points and computes their statistics in the database.

    Uses the configured DATABASE_URL (applying the migrations) unless given an engine or a
    database URL.
    """

    def __init__(self, database_url: str | None = None, *, engine: Engine | None = None) -> None:
        self.engine = resolve_engine(engine, database_url)

    def record_metric(
        self,
        name: str,
        value: float,
        metric_type: MetricType | str = MetricType.CUSTOM,
        tags: Mapping[str, str] | None = None,
        timestamp: datetime | None = None,
    ) -> MetricPoint:
        """Store one point and return it.

        `value` must be a finite int or float and tags must map strings to strings; anything
        else raises ValueError naming the value. `timestamp` defaults to now; a naive one is UTC.
        """
        type_value = metric_type_value(metric_type)
        with session_scope(self.engine) as session:
            metric_id = metrics.upsert_metric(
                session=session,
                name=name,
                metric_type=type_value,  # type: ignore[arg-type]
                value=value,
                timestamp=timestamp,
                tags=dict(tags) if isinstance(tags, Mapping) else tags,  # type: ignore[arg-type]
            )
            row = session.get_one(Metric, metric_id)
            point = MetricPoint.from_row(row)
        logger.debug("metric recorded", extra={"metric_id": point.id, "metric_type": type_value})
        return point

    def _filter(
        self,
        metric_type: MetricType | str | None,
        tag_filter: Mapping[str, str] | None,
        since: datetime | str | None,
        until: datetime | str | None = None,
    ) -> metrics.MetricFilter:
        return metrics.MetricFilter(
            metric_type=metric_type_value(metric_type),
            tags=metrics.validate_tags(tag_filter) or None,
            since=time_bound(since, "since"),
            until=time_bound(until, "until"),
        )

    def get_metrics(
        self,
        metric_type: MetricType | str | None = None,
        tag_filter: Mapping[str, str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
    ) -> list[MetricPoint]:
        """Return the matching points, newest first; `since` is inclusive and `until` is not."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"invalid limit {limit!r}: expected a positive integer")
        metric_filter = self._filter(metric_type, tag_filter, since, until)
        with session_scope(self.engine) as session:
            rows = metrics.list_metrics(session=session, metric_filter=metric_filter, limit=limit)
            return [MetricPoint.from_row(row) for row in rows]

    def calculate_statistics(
        self,
        metric_type: MetricType | str | None = None,
        tag_filter: Mapping[str, str] | None = None,
        since: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Return count, mean, min, max, total, stddev (population), p50, p90, p95 and p99.

        With no matching points, count is 0, total is 0.0 and the others are None. Above
        20,000 points the percentiles are estimates within 0.5 % and `percentiles_exact` is False.
        """
        metric_filter = self._filter(metric_type, tag_filter, since)
        with session_scope(self.engine) as session:
            return metrics.calculate_statistics(session=session, metric_filter=metric_filter)

    def get_metric_summary(self) -> dict[str, dict[str, Any]]:
        """Return, per metric type with points, the count, mean, min, max, total, first_at and last_at."""
        with session_scope(self.engine) as session:
            return metrics.summarize_metrics(session=session)

    def export_metrics(
        self,
        metric_type: MetricType | str | None = None,
        tag_filter: Mapping[str, str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> list[dict[str, Any]]:
        """Return the matching points as JSON-ready dicts, newest first."""
        return [point.to_dict() for point in self.get_metrics(metric_type, tag_filter, since, until)]

    def clear_metrics(
        self,
        metric_type: MetricType | str | None = None,
        tag_filter: Mapping[str, str] | None = None,
        *,
        include_derived: bool = False,
    ) -> int:
        """Delete the matching points recorded through this API and return how many.

        Points the bot derived from webhooks (build, queue, test and publish times of runs and
        jobs) stay unless `include_derived` is True.
        """
        metric_filter = self._filter(metric_type, tag_filter, None)
        with session_scope(self.engine) as session:
            deleted = metrics.delete_metrics(
                session=session, metric_filter=metric_filter, include_derived=include_derived
            )
        logger.info("metrics cleared", extra={"deleted": deleted, "include_derived": include_derived})
        return deleted
