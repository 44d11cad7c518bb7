"""Write, list, delete and summarize metric points; statistics are in storage.metric_stats.

Every write goes through these functions, because they also keep the daily rollups of
storage.metric_rollups current in the same transaction.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlmodel import Session

from storage import metric_rollups, prefetch
from storage.metric_filter import COLUMN_TAGS, MetricFilter, as_utc
from storage.metric_stats import EMPTY_STATISTICS, PERCENTILES, calculate_statistics
from storage.models import Metric, MetricType
from storage.models_release import MetricRollup
from storage.types import utc_now

__all__ = [
    "COLUMN_TAGS",
    "EMPTY_STATISTICS",
    "PERCENTILES",
    "MetricFilter",
    "calculate_statistics",
    "delete_metrics",
    "list_metrics",
    "summarize_metrics",
    "upsert_metric",
    "validate_value",
]

POINT = Metric.__table__  # type: ignore[attr-defined]
STORED_BY_SOURCE_KEYS = select(
    POINT.c.id, POINT.c.source_key, POINT.c.metric_type, POINT.c.repo, POINT.c.timestamp, POINT.c.value
).where(POINT.c.source_key.in_(bindparam("source_keys", expanding=True)))
MAX_KEYS_PER_QUERY = 500
INSERT_POINT = insert(POINT).returning(POINT.c.id)
UPDATE_POINT = update(POINT).where(POINT.c.id == bindparam("point_id"))

# Column sizes of `metric`; longer values would fail on PostgreSQL.
MAX_NAME_LENGTH = 200
MAX_TAG_LENGTHS = {"repo": 200, "workflow": 255, "branch": 255, "conclusion": 40}
METRIC_TYPES = frozenset(member.value for member in MetricType)


def validate_value(value: object) -> float:
    """Return a metric value as a float, or raise ValueError unless it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"invalid metric value {value!r}: expected a finite int or float")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"invalid metric value {value!r}: expected a finite number, not NaN or infinity")
    return number


def validate_metric_type(metric_type: object) -> str:
    """Return a metric type's value, or raise ValueError naming the known types."""
    text = metric_type.value if isinstance(metric_type, MetricType) else metric_type
    if not isinstance(text, str) or text not in METRIC_TYPES:
        raise ValueError(
            f"invalid metric type {metric_type!r}: use one of {', '.join(sorted(METRIC_TYPES))}"
        )
    return text


def validate_name(name: object) -> str:
    """Return a metric name, or raise ValueError unless it is a non-empty string that fits."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"invalid metric name {name!r}: expected a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"invalid metric name {name[:40]!r}...: longer than {MAX_NAME_LENGTH} characters")
    return name


def validate_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """Return tags as a new dict, or raise ValueError naming a key or value that is not a string.

    The `repo` tag is stored in lower case, as the bot keys repositories.
    """
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise ValueError(f"invalid tags {tags!r}: expected a mapping of strings to strings")
    checked: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"invalid tag key {key!r}: expected a non-empty string")
        if not isinstance(value, str):
            raise ValueError(f"invalid value {value!r} for tag {key!r}: expected a string")
        limit = MAX_TAG_LENGTHS.get(key)
        if limit is not None and len(value) > limit:
            raise ValueError(f"invalid value for tag {key!r}: longer than {limit} characters")
        checked[key] = value.lower() if key == "repo" else value
    return checked


def point_values(
    *,
    name: str,
    metric_type: str,
    value: float,
    timestamp: datetime | None,
    tags: dict[str, str] | None,
    source_key: str | None,
) -> dict[str, Any]:
    """Return a point's column values, or raise ValueError naming an invalid argument."""
    name = validate_name(name)
    metric_type = validate_metric_type(metric_type)
    number = validate_value(value)
    tags = validate_tags(tags)
    if timestamp is not None and not isinstance(timestamp, datetime):
        raise ValueError(f"invalid timestamp {timestamp!r}: expected a datetime")
    return {
        "name": name,
        "metric_type": metric_type,
        "value": number,
        "value_bucket": metric_rollups.value_bucket(number),
        "timestamp": as_utc(timestamp) or utc_now(),
        "tags": tags,
        "source_key": source_key,
        **{column: tags.get(column) for column in COLUMN_TAGS},
    }


def upsert_metric(
    *,
    session: Session,
    name: str,
    metric_type: str,
    value: float,
    timestamp: datetime | None = None,
    tags: dict[str, str] | None = None,
    source_key: str | None = None,
) -> int:
    """Record a metric point and return its id; a point with the same source key is updated.

    Raises ValueError naming the value when the name, type, value, tags or timestamp are invalid.
    `session.get(Metric, id)` reads the point back.
    """
    values = point_values(
        name=name, metric_type=metric_type, value=value, timestamp=timestamp, tags=tags, source_key=source_key
    )
    return write_points(session, [values])[0]


def record_metric(
    *,
    session: Session,
    name: str,
    metric_type: str,
    value: float,
    timestamp: datetime | None = None,
    tags: dict[str, str] | None = None,
    source_key: str | None = None,
) -> None:
    """Record a point derived from a webhook, like `upsert_metric` but without returning its id.

    In a worker batch the point is validated now and written by `flush_pending_metrics`, with
    the batch's other points: a point alone cost four statements, and on PostgreSQL each is a
    round trip to the server.
    """
    values = point_values(
        name=name, metric_type=metric_type, value=value, timestamp=timestamp, tags=tags, source_key=source_key
    )
    facts = prefetch.batch_facts(session)
    if facts is None:
        write_points(session, [values])
    else:
        facts.pending_points.append(values)


def flush_pending_metrics(session: Session) -> None:
    """Write the points that `record_metric` holds for the batch."""
    facts = prefetch.batch_facts(session)
    if facts is not None and facts.pending_points:
        points, facts.pending_points = facts.pending_points, []
        write_points(session, points)


def write_points(session: Session, points: list[dict[str, Any]]) -> list[int]:
    """Insert or update points by source key, keep their rollups current; return the ids written.

    A source key given twice keeps the last point, as writing them in turn would. A point that
    changed is taken out of its old rollup before it counts in the new one. Statements go to
    the session's connection, without the ORM layer or an autoflush: points are never written
    through ORM objects.
    """
    connection = session.connection()
    latest: dict[str, dict[str, Any]] = {}
    unkeyed: list[dict[str, Any]] = []
    for point in points:
        if point["source_key"] is None:
            unkeyed.append(point)
        else:
            latest[point["source_key"]] = point
    stored: dict[str, Any] = {}
    keys = list(latest)
    for start in range(0, len(keys), MAX_KEYS_PER_QUERY):
        chunk = keys[start : start + MAX_KEYS_PER_QUERY]
        for row in connection.execute(STORED_BY_SOURCE_KEYS, {"source_keys": chunk}):
            stored[row.source_key] = row

    new = unkeyed + [point for key, point in latest.items() if key not in stored]
    ids: list[int] = []
    if len(new) == 1:
        ids.append(int(connection.execute(INSERT_POINT, new[0]).scalar_one()))
    elif new:
        # Ids come back only for a single point, which is what `upsert_metric` writes.
        connection.execute(insert(POINT), new)
    counted = list(new)
    changed = [(point, stored[key]) for key, point in latest.items() if key in stored]
    if changed:
        connection.execute(UPDATE_POINT, [{**point, "point_id": row.id} for point, row in changed])
    for point, row in changed:
        ids.append(int(row.id))
        previous = (row.metric_type, row.repo, as_utc(row.timestamp), row.value)
        if previous == (point["metric_type"], point["repo"], point["timestamp"], point["value"]):
            continue
        old_time = previous[2] or point["timestamp"]
        metric_rollups.remove_point(
            session, metric_type=row.metric_type, repo=row.repo, timestamp=old_time, value=row.value
        )
        counted.append(point)
    metric_rollups.add_points(
        session, [(point["metric_type"], point["repo"], point["timestamp"], point["value"]) for point in counted]
    )
    return ids


def list_metrics(*, session: Session, metric_filter: MetricFilter, limit: int | None = None) -> list[Metric]:
    """Return the matching points, newest first (by timestamp, then id)."""
    statement = (
        select(Metric)
        .where(*metric_filter.conditions())
        .order_by(Metric.timestamp.desc(), Metric.id.desc())  # type: ignore[attr-defined,union-attr]
    )
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement).all())


def delete_metrics(*, session: Session, metric_filter: MetricFilter, include_derived: bool = False) -> int:
    """Delete the matching points and return how many.

    Points derived from webhooks carry a source key and stay unless `include_derived` is set
    (processing the same fact again would bring them back). The rollups of every metric type
    and repo that lost points are recomputed.
    """
    conditions = metric_filter.conditions()
    if not include_derived:
        conditions.append(Metric.source_key.is_(None))  # type: ignore[union-attr]
    scopes = session.execute(
        select(Metric.metric_type, func.coalesce(Metric.repo, "")).where(*conditions).distinct()
    ).all()
    if not scopes:
        return 0
    result = session.execute(delete(Metric).where(*conditions).execution_options(synchronize_session=False))
    for metric_type, repo in scopes:
        metric_rollups.rebuild_rollups(session, metric_type=metric_type, repo=repo)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def summarize_metrics(*, session: Session) -> dict[str, dict[str, Any]]:
    """Return, per metric type, the count, mean, min, max and total, and the first and last point times."""
    rows = session.execute(
        select(
            MetricRollup.metric_type,
            func.sum(MetricRollup.count),
            func.sum(MetricRollup.total),
            func.min(MetricRollup.min_value),
            func.max(MetricRollup.max_value),
        ).group_by(MetricRollup.metric_type)
    ).all()
    summary: dict[str, dict[str, Any]] = {}
    for metric_type, count, total, minimum, maximum in rows:
        if not count:
            continue
        # Per type, min and max of the timestamp are two index lookups, not a scan.
        first, last = session.execute(
            select(func.min(Metric.timestamp), func.max(Metric.timestamp)).where(
                Metric.metric_type == metric_type
            )
        ).one()
        summary[metric_type] = {
            "count": int(count),
            "mean": float(total) / int(count),
            "min": minimum,
            "max": maximum,
            "total": float(total),
            "first_at": as_utc(first),
            "last_at": as_utc(last),
        }
    return summary
