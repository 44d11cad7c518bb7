"""Daily rollups and value histograms of metric points, so statistics read rollup rows, not points.

Each (metric type, repo, UTC day) has one `metric_rollup` row with the count, sum, sum of
squares, min and max of its points, and one `metric_rollup_bucket` row per histogram bucket
that contains at least one of its points. `upsert_metric` and `delete_metrics` keep both current
in the transaction that writes the points.

Buckets are logarithmic. With gamma = (1 + a) / (1 - a) and a = RELATIVE_ACCURACY, bucket k
contains the values in (gamma**(k-1), gamma**k] (shifted by BUCKET_OFFSET so that k > 0), and its
representative value 2 * gamma**k / (gamma + 1) is within a relative error of `a` of every value
in it. Negative values use the same buckets with a negative sign, and magnitudes below
MIN_MAGNITUDE share bucket 0, whose representative is 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    bindparam,
    delete,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlmodel import Session

from storage.db import upsert_insert
from storage.models import Metric
from storage.models_release import MetricRollup, MetricRollupBucket
from storage.types import UTCDateTime

# Changing these constants changes the meaning of stored buckets: it needs a migration that
# recomputes `metric.value_bucket` and the rollups.
RELATIVE_ACCURACY = 0.005
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LOG_GAMMA = math.log(GAMMA)
MIN_MAGNITUDE = 1e-9
BUCKET_OFFSET = math.ceil(-math.log(MIN_MAGNITUDE) / LOG_GAMMA) + 1

ROLLUP = MetricRollup.__table__  # type: ignore[attr-defined]
BUCKET = MetricRollupBucket.__table__  # type: ignore[attr-defined]
POINT = Metric.__table__  # type: ignore[attr-defined]


def value_bucket(value: float) -> int:
    """Return the histogram bucket of a finite value."""
    magnitude = abs(value)
    if magnitude < MIN_MAGNITUDE:
        return 0
    index = math.ceil(math.log(magnitude) / LOG_GAMMA) + BUCKET_OFFSET
    return index if value > 0 else -index


def bucket_value(bucket: int) -> float:
    """Return the representative value of a bucket, within RELATIVE_ACCURACY of its members."""
    if bucket == 0:
        return 0.0
    representative = 2 * GAMMA ** (abs(bucket) - BUCKET_OFFSET) / (GAMMA + 1)
    return representative if bucket > 0 else -representative


def day_of(timestamp: datetime) -> date:
    """Return the UTC day of a timestamp; a naive timestamp is taken as UTC."""
    if timestamp.tzinfo is None:
        return timestamp.date()
    return timestamp.astimezone(UTC).date()


def day_start(day: date) -> datetime:
    """Return midnight UTC at the start of a day."""
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass
class Totals:
    """Count, sum, sum of squares, min and max of a set of points."""

    count: int = 0
    total: float = 0.0
    total_squares: float = 0.0
    minimum: float | None = None
    maximum: float | None = None

    def add(self, other: Totals) -> None:
        """Merge another set's totals into these."""
        self.count += other.count
        self.total += other.total
        self.total_squares += other.total_squares
        for name, pick in (("minimum", min), ("maximum", max)):
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is not None:
                setattr(self, name, theirs if mine is None else pick(mine, theirs))


def add_point(session: Session, *, metric_type: str, repo: str | None, timestamp: datetime, value: float) -> None:
    """Count a new point in its day's rollup and histogram bucket."""
    add_points(session, [(metric_type, repo, timestamp, value)])


def add_points(session: Session, points: Sequence[tuple[str, str | None, datetime, float]]) -> None:
    """Count new points, given as (metric type, repo, timestamp, value), in their rollups and buckets.

    The points are summed per rollup and per bucket first, so that a batch costs three
    statements (the rollups, their ids, the buckets) whatever its size.

    NOTE: every transaction that writes a point updates the rollup row of its metric type, repo
    and day. On PostgreSQL, replicas writing the same repo therefore wait for each other. The
    rows are written in key order, so two batches do not lock them in opposite orders. If
    PostgreSQL still reports a deadlock, the worker retries its batch.
    """
    rollups: dict[tuple[str, str, date], Totals] = {}
    buckets: dict[tuple[str, str, date], dict[int, int]] = {}
    for metric_type, repo, timestamp, value in points:
        key = (metric_type, repo or "", day_of(timestamp))
        rollups.setdefault(key, Totals()).add(Totals(1, value, value * value, value, value))
        counts = buckets.setdefault(key, {})
        bucket = value_bucket(value)
        counts[bucket] = counts.get(bucket, 0) + 1
    if not rollups:
        return

    keys = sorted(rollups)
    rollup_statement, bucket_statement = add_point_statements(session.get_bind().dialect.name)
    connection = session.connection()
    connection.execute(
        rollup_statement,
        [
            {
                "metric_type": key[0],
                "repo": key[1],
                "day": key[2],
                "count": rollups[key].count,
                "total": rollups[key].total,
                "total_squares": rollups[key].total_squares,
                "min_value": rollups[key].minimum,
                "max_value": rollups[key].maximum,
            }
            for key in keys
        ],
    )
    ids = {
        (row.metric_type, row.repo, row.day): row.id
        for row in connection.execute(
            select(ROLLUP.c.id, ROLLUP.c.metric_type, ROLLUP.c.repo, ROLLUP.c.day).where(
                tuple_(ROLLUP.c.metric_type, ROLLUP.c.repo, ROLLUP.c.day).in_(keys)
            )
        )
    }
    connection.execute(
        bucket_statement,
        [
            {"rollup_id": ids[key], "bucket": bucket, "count": count}
            for key in keys
            for bucket, count in sorted(buckets[key].items())
        ],
    )


@cache
def add_point_statements(dialect_name: str) -> tuple[Any, Any]:
    """Return the upserts of a rollup row and of a bucket row, built once.

    Both take their values as execution parameters, so a point costs no statement building.
    """
    is_postgresql = dialect_name == "postgresql"
    insert = upsert_insert(dialect_name)
    least = func.least if is_postgresql else func.min
    greatest = func.greatest if is_postgresql else func.max

    rollup = insert(ROLLUP)
    excluded = rollup.excluded
    rollup = rollup.on_conflict_do_update(
        index_elements=["metric_type", "repo", "day"],
        set_={
            "count": ROLLUP.c.count + excluded.count,
            "total": ROLLUP.c.total + excluded.total,
            "total_squares": ROLLUP.c.total_squares + excluded.total_squares,
            "min_value": least(func.coalesce(ROLLUP.c.min_value, excluded.min_value), excluded.min_value),
            "max_value": greatest(func.coalesce(ROLLUP.c.max_value, excluded.max_value), excluded.max_value),
        },
    )
    bucket = insert(BUCKET)
    bucket = bucket.on_conflict_do_update(
        index_elements=["rollup_id", "bucket"],
        set_={"count": BUCKET.c.count + bucket.excluded.count},
    )
    return rollup, bucket


def remove_point(
    session: Session, *, metric_type: str, repo: str | None, timestamp: datetime, value: float
) -> None:
    """Take a point that changed or was deleted out of its day's rollup and bucket.

    The point's own row must already hold its new state (or be gone), because a removed min
    or max is recomputed from the stored points of that day.
    """
    day = day_of(timestamp)
    key = (ROLLUP.c.metric_type == metric_type, ROLLUP.c.repo == (repo or ""), ROLLUP.c.day == day)
    row = session.execute(select(ROLLUP.c.id, ROLLUP.c.count, ROLLUP.c.min_value, ROLLUP.c.max_value).where(*key)).first()
    if row is None:
        # NOTE: only a point written around upsert_metric lacks a rollup; rebuild_rollups repairs that.
        return
    if row.count <= 1:
        session.execute(delete(BUCKET).where(BUCKET.c.rollup_id == row.id))
        session.execute(delete(ROLLUP).where(ROLLUP.c.id == row.id))
        return

    session.execute(
        update(ROLLUP)
        .where(ROLLUP.c.id == row.id)
        .values(
            count=ROLLUP.c.count - 1,
            total=ROLLUP.c.total - value,
            total_squares=ROLLUP.c.total_squares - value * value,
        )
    )
    bucket_key = (BUCKET.c.rollup_id == row.id, BUCKET.c.bucket == value_bucket(value))
    session.execute(update(BUCKET).where(*bucket_key).values(count=BUCKET.c.count - 1))
    session.execute(delete(BUCKET).where(*bucket_key, BUCKET.c.count <= 0))

    if value <= row.min_value or value >= row.max_value:
        day_points = and_conditions(metric_type, repo, day_start(day), day_start(day + timedelta(days=1)))
        session.execute(
            update(ROLLUP)
            .where(ROLLUP.c.id == row.id)
            .values(
                min_value=select(func.min(Metric.value)).where(*day_points).scalar_subquery(),
                max_value=select(func.max(Metric.value)).where(*day_points).scalar_subquery(),
            )
        )


def and_conditions(
    metric_type: str | None, repo: str | None, start: datetime | None, end: datetime | None
) -> list[ColumnElement[bool]]:
    """Return the conditions selecting the points of a rollup scope between two times."""
    conditions: list[ColumnElement[bool]] = []
    if metric_type is not None:
        conditions.append(Metric.metric_type == metric_type)
    if repo:
        conditions.append(Metric.repo == repo)
    elif repo is not None:
        conditions.append(func.coalesce(Metric.repo, "") == "")
    if start is not None:
        conditions.append(Metric.timestamp >= start)
    if end is not None:
        conditions.append(Metric.timestamp < end)
    return conditions


def rollup_conditions(
    metric_type: str | None, repo: str | None, first_day: date | None, end_day: date | None
) -> list[ColumnElement[bool]]:
    """Return the conditions selecting the rollups of whole days in [first_day, end_day)."""
    conditions: list[ColumnElement[bool]] = []
    if metric_type is not None:
        conditions.append(ROLLUP.c.metric_type == metric_type)
    if repo is not None:
        conditions.append(ROLLUP.c.repo == repo)
    if first_day is not None:
        conditions.append(ROLLUP.c.day >= first_day)
    if end_day is not None:
        conditions.append(ROLLUP.c.day < end_day)
    return conditions


def rollup_totals(session: Session, conditions: Sequence[ColumnElement[bool]]) -> Totals:
    """Sum the rollups that match the conditions."""
    row = session.execute(
        select(
            func.sum(ROLLUP.c.count),
            func.sum(ROLLUP.c.total),
            func.sum(ROLLUP.c.total_squares),
            func.min(ROLLUP.c.min_value),
            func.max(ROLLUP.c.max_value),
        ).where(*conditions)
    ).one()
    return Totals(int(row[0] or 0), float(row[1] or 0.0), float(row[2] or 0.0), row[3], row[4])


def rollup_histogram(session: Session, conditions: Sequence[ColumnElement[bool]]) -> dict[int, int]:
    """Return the bucket counts of the rollups that match the conditions."""
    statement: Select[Any] = (
        select(BUCKET.c.bucket, func.sum(BUCKET.c.count))
        .join(ROLLUP, ROLLUP.c.id == BUCKET.c.rollup_id)
        .where(*conditions)
        .group_by(BUCKET.c.bucket)
    )
    return {int(bucket): int(count) for bucket, count in session.execute(statement)}


def point_totals(session: Session, conditions: Sequence[ColumnElement[bool]]) -> Totals:
    """Aggregate the stored points that match the conditions."""
    row = session.execute(
        select(
            func.count(Metric.value),
            func.sum(Metric.value),
            func.sum(Metric.value * Metric.value),
            func.min(Metric.value),
            func.max(Metric.value),
        ).where(*conditions)
    ).one()
    return Totals(int(row[0] or 0), float(row[1] or 0.0), float(row[2] or 0.0), row[3], row[4])


def point_histogram(session: Session, conditions: Sequence[ColumnElement[bool]]) -> dict[int, int]:
    """Return the bucket counts of the stored points that match the conditions."""
    statement = (
        select(Metric.value_bucket, func.count())
        .where(*conditions, Metric.value_bucket.is_not(None))  # type: ignore[union-attr]
        .group_by(Metric.value_bucket)
    )
    return {int(bucket): int(count) for bucket, count in session.execute(statement)}


def merge_histograms(histograms: Iterable[dict[int, int]]) -> dict[int, int]:
    """Add bucket counts together."""
    merged: dict[int, int] = {}
    for histogram in histograms:
        for bucket, count in histogram.items():
            merged[bucket] = merged.get(bucket, 0) + count
    return merged


def estimate_percentiles(
    histogram: dict[int, int], fractions: dict[str, float], *, minimum: float, maximum: float
) -> dict[str, float]:
    """Estimate linearly interpolated percentiles from bucket counts.

    The value at each rank is its bucket's representative, clamped to [minimum, maximum]; the
    estimate is within RELATIVE_ACCURACY of the exact percentile when the two ranks it
    interpolates between have the same sign.
    """
    buckets = sorted(histogram)
    count = sum(histogram.values())
    wanted: set[int] = set()
    for fraction in fractions.values():
        position = (count - 1) * fraction
        wanted.update({math.floor(position), min(math.floor(position) + 1, count - 1)})

    values_at: dict[int, float] = {}
    seen = 0
    ranks = sorted(wanted)
    index = 0
    for bucket in buckets:
        seen += histogram[bucket]
        while index < len(ranks) and ranks[index] < seen:
            values_at[ranks[index]] = min(max(bucket_value(bucket), minimum), maximum)
            index += 1

    result: dict[str, float] = {}
    for name, fraction in fractions.items():
        position = (count - 1) * fraction
        lower = math.floor(position)
        upper = min(lower + 1, count - 1)
        result[name] = values_at[lower] + (values_at[upper] - values_at[lower]) * (position - lower)
    return result


def rebuild_rollups(
    session: Session,
    *,
    metric_type: str | None = None,
    repo: str | None = None,
    first_day: date | None = None,
) -> None:
    """Recompute the rollups and buckets of one metric type and repo ('' for none), or of all.

    For bulk loads and repairs. With `first_day`, only that UTC day and later ones are
    rewritten. The cost grows with the number of stored points in the scope, and SQLite holds
    its write lock meanwhile. A full rebuild of 300,000 points took 18 s on the benchmark
    machine of docs/benchmarks.md, so a periodic repair should pass `first_day`.
    """
    is_postgresql = session.get_bind().dialect.name == "postgresql"
    day = "(m.timestamp AT TIME ZONE 'UTC')::date" if is_postgresql else "date(m.timestamp)"
    point_filters, rollup_filters = ["1 = 1"], ["1 = 1"]
    params: dict[str, Any] = {}
    if metric_type is not None:
        point_filters.append("m.metric_type = :metric_type")
        rollup_filters.append("metric_type = :metric_type")
        params["metric_type"] = metric_type
    if repo is not None:
        point_filters.append("COALESCE(m.repo, '') = :repo")
        rollup_filters.append("repo = :repo")
        params["repo"] = repo
    if first_day is not None:
        point_filters.append("m.timestamp >= :start")
        rollup_filters.append("day >= :first_day")
        params.update(start=day_start(first_day), first_day=first_day)
    point_where = " AND ".join(point_filters)
    rollup_where = " AND ".join(rollup_filters)

    def statement(sql: str) -> Any:
        # Typed parameters: SQLite compares the stored naive UTC text and 'YYYY-MM-DD' days.
        bound = [name for name in ("start", "first_day") if f":{name}" in sql]
        types = {"start": UTCDateTime(), "first_day": Date()}
        return text(sql).bindparams(*(bindparam(name, type_=types[name]) for name in bound))

    # Points inserted around upsert_metric (bulk loads) have no bucket yet; SQLite may lack ln().
    missing = session.execute(
        select(Metric.id, Metric.value).where(Metric.value_bucket.is_(None))  # type: ignore[union-attr]
    ).all()
    if missing:
        session.execute(
            update(POINT).where(POINT.c.id == bindparam("point_id")).values(value_bucket=bindparam("bucket")),
            [{"point_id": point_id, "bucket": value_bucket(value)} for point_id, value in missing],
        )

    session.execute(
        statement(
            f"DELETE FROM metric_rollup_bucket WHERE rollup_id IN (SELECT id FROM metric_rollup WHERE {rollup_where})"
        ),
        params,
    )
    session.execute(statement(f"DELETE FROM metric_rollup WHERE {rollup_where}"), params)
    session.execute(
        statement(
            "INSERT INTO metric_rollup (metric_type, repo, day, count, total, total_squares, min_value, max_value) "
            f"SELECT m.metric_type, COALESCE(m.repo, ''), {day}, COUNT(*), SUM(m.value), "
            f"SUM(m.value * m.value), MIN(m.value), MAX(m.value) FROM metric m WHERE {point_where} "
            f"GROUP BY m.metric_type, COALESCE(m.repo, ''), {day}"
        ),
        params,
    )
    session.execute(
        statement(
            "INSERT INTO metric_rollup_bucket (rollup_id, bucket, count) "
            "SELECT r.id, m.value_bucket, COUNT(*) FROM metric m JOIN metric_rollup r "
            f"ON r.metric_type = m.metric_type AND r.repo = COALESCE(m.repo, '') AND r.day = {day} "
            f"WHERE {point_where} AND m.value_bucket IS NOT NULL GROUP BY r.id, m.value_bucket"
        ),
        params,
    )
