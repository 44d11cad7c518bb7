"""Benchmark metric statistics: `calculate_statistics` next to the best plain SQL for the same numbers.

For each backend (SQLite in a temporary file, PostgreSQL on a fresh database) it loads
1,000,000 `build_time` points of one repository spread over 90 days, plus 100,000 points of a
second repository, and builds the daily rollups. Then it times two queries in the same run and
on the same data:

- `calculate_statistics` (rollups plus the partial days at the window's edges; percentiles
  from the histogram above 20,000 points);
- the plain SQL baseline: one aggregate query for count, sum, min, max and the sum of squares
  plus the exact percentiles (`percentile_cont` on PostgreSQL, `row_number()` ranks on SQLite),
  both reading the covering index `ix_metric_type_repo_time_value`.

Each query runs once to warm the caches and then `--repeat` times. The report gives the median
and the maximum time, and the largest relative difference between the two results' percentiles.

Run by hand from the repository root, for example:
`.venv/bin/python -m bench.stats_bench --json-out /tmp/stats.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from storage import metric_rollups
from storage.db import create_db_engine, session_scope, upgrade_database
from storage.metrics import PERCENTILES, MetricFilter, calculate_statistics
from storage.models import Metric

DEFAULT_POSTGRES_URL = "postgresql+psycopg://releasebot:releasebot@127.0.0.1:5432/postgres"
BENCH_DATABASE = "release_bot_stats_bench"
REPO = "octo-org/widget"
OTHER_REPO = "octo-org/gadget"
END = datetime(2024, 9, 1, tzinfo=UTC)
WORKFLOWS = ("CI", "Release", "Nightly", "Docs")
BRANCHES = ("main", "dev", "feature-a", "feature-b", "feature-c")
CONCLUSIONS = ("success", "success", "success", "failure", "cancelled")
CHUNK = 20_000


def generate_rows(count: int, repo: str, days: int, seed: int) -> list[dict[str, Any]]:
    """Return `count` build-time points of `repo`, log-normal around 5 minutes, over `days` days."""
    rng = random.Random(seed)
    span = days * 86_400
    rows = []
    for _ in range(count):
        value = round(rng.lognormvariate(math.log(300), 0.6), 3)
        workflow, branch, conclusion = rng.choice(WORKFLOWS), rng.choice(BRANCHES), rng.choice(CONCLUSIONS)
        tags = {"repo": repo, "workflow": workflow, "branch": branch, "conclusion": conclusion}
        rows.append(
            {
                "name": "build_time",
                "metric_type": "build_time",
                "value": value,
                "value_bucket": metric_rollups.value_bucket(value),
                "timestamp": END - timedelta(seconds=rng.uniform(0, span)),
                "tags": tags,
                "source_key": None,
                **tags,
            }
        )
    return rows


def load(engine: Engine, points: int, days: int) -> float:
    """Insert the points and build the rollups; return the seconds it took."""
    started = time.perf_counter()
    table = Metric.__table__  # type: ignore[attr-defined]
    for repo, count, seed in ((REPO, points, 1), (OTHER_REPO, points // 10, 2)):
        rows = generate_rows(count, repo, days, seed)
        for offset in range(0, len(rows), CHUNK):
            with engine.begin() as connection:
                connection.execute(insert(table), rows[offset : offset + CHUNK])
    with session_scope(engine) as session:
        metric_rollups.rebuild_rollups(session)
    with engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()
    return time.perf_counter() - started


def plain_sql(session: Session, since: datetime | None) -> dict[str, Any]:
    """Compute the same statistics with the best plain SQL: exact, over the covering index."""
    conditions = [Metric.metric_type == "build_time", Metric.repo == REPO]
    if since is not None:
        conditions.append(Metric.timestamp >= since)
    value = Metric.value
    aggregates = [func.count(value), func.sum(value), func.min(value), func.max(value), func.sum(value * value)]
    if session.get_bind().dialect.name == "postgresql":
        percentiles = [func.percentile_cont(fraction).within_group(value) for fraction in PERCENTILES.values()]
        row = session.execute(select(*aggregates, *percentiles).where(*conditions)).one()
        count, total, minimum, maximum, squares = row[:5]
        result = dict(zip(PERCENTILES, (float(v) for v in row[5:]), strict=True))
    else:
        count, total, minimum, maximum, squares = session.execute(select(*aggregates).where(*conditions)).one()
        ranks = {}
        for name, fraction in PERCENTILES.items():
            lower = math.floor((count - 1) * fraction)
            ranks[name] = (lower, min(lower + 1, count - 1), (count - 1) * fraction - lower)
        wanted = sorted({rank + 1 for lower, upper, _ in ranks.values() for rank in (lower, upper)})
        numbered = select(value, func.row_number().over(order_by=value).label("rank")).where(*conditions).subquery()
        values = dict(session.execute(select(numbered.c.rank, numbered.c.value).where(numbered.c.rank.in_(wanted))).all())
        result = {
            name: values[lower + 1] + (values[upper + 1] - values[lower + 1]) * fraction
            for name, (lower, upper, fraction) in ranks.items()
        }
    mean = total / count
    result.update(
        count=count, mean=mean, min=minimum, max=maximum, total=total,
        stddev=math.sqrt(max(0.0, squares / count - mean * mean)),
    )
    return result


def time_call(engine: Engine, call: Callable[[Session], dict[str, Any]], repeat: int) -> tuple[list[float], dict[str, Any]]:
    """Run a query once to warm up, then `repeat` times; return the times in ms and the last result."""
    with Session(engine) as session:
        result = call(session)
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        with Session(engine) as session:
            result = call(session)
        timings.append((time.perf_counter() - started) * 1000)
    return timings, result


def run_backend(name: str, engine: Engine, points: int, days: int, repeat: int) -> dict[str, Any]:
    """Load one backend and time both queries over three windows."""
    load_seconds = load(engine, points, days)
    print(f"{name}: loaded {points + points // 10:,} points and rollups in {load_seconds:.1f} s", file=sys.stderr)
    # A window start that is not midnight makes the rollup path read the partial first day too.
    windows = {
        "all (90 days)": None,
        "since 30d at 13:37": END - timedelta(days=30) + timedelta(hours=13, minutes=37),
        "since 7d at 13:37": END - timedelta(days=7) + timedelta(hours=13, minutes=37),
    }
    report: dict[str, Any] = {"backend": name, "load_seconds": round(load_seconds, 1), "windows": []}
    for label, since in windows.items():
        metric_filter = MetricFilter(metric_type="build_time", tags={"repo": REPO}, since=since)
        api_times, api_result = time_call(
            engine, lambda session, f=metric_filter: calculate_statistics(session=session, metric_filter=f), repeat
        )
        sql_times, sql_result = time_call(engine, lambda session, start=since: plain_sql(session, start), repeat)
        assert api_result["count"] == sql_result["count"], (api_result["count"], sql_result["count"])
        error = max(abs(api_result[key] - sql_result[key]) / abs(sql_result[key]) for key in PERCENTILES)
        report["windows"].append(
            {
                "window": label,
                "points": api_result["count"],
                "api_median_ms": round(statistics.median(api_times), 1),
                "api_max_ms": round(max(api_times), 1),
                "sql_median_ms": round(statistics.median(sql_times), 1),
                "sql_max_ms": round(max(sql_times), 1),
                "percentiles_exact": api_result["percentiles_exact"],
                "max_percentile_relative_error": error,
                "mean_relative_error": abs(api_result["mean"] - sql_result["mean"]) / sql_result["mean"],
            }
        )
    return report


def fresh_postgres(base_url: str) -> str:
    """Create an empty benchmark database on the server of `base_url`; return its URL."""
    admin = create_engine(make_url(base_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
    admin.dispose()
    return make_url(base_url).set(database=BENCH_DATABASE).render_as_string(hide_password=False)


def print_table(reports: list[dict[str, Any]]) -> None:
    """Print the results as a Markdown table."""
    print("| backend | window | points | calculate_statistics median / max (ms) | plain SQL median / max (ms) | percentiles | max percentile error |")
    print("|---|---|---:|---:|---:|---|---:|")
    for report in reports:
        for row in report["windows"]:
            kind = "exact" if row["percentiles_exact"] else "histogram"
            print(
                f"| {report['backend']} | {row['window']} | {row['points']:,} | "
                f"{row['api_median_ms']} / {row['api_max_ms']} | {row['sql_median_ms']} / {row['sql_max_ms']} | "
                f"{kind} | {row['max_percentile_relative_error']:.3%} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points of the measured repository")
    parser.add_argument("--days", type=int, default=90, help="days the points spread over")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each query")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server to create the database on")
    parser.add_argument("--skip-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args()

    reports = []
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'stats.db'}"
        upgrade_database(url)
        engine = create_db_engine(url)
        reports.append(run_backend("SQLite", engine, args.points, args.days, args.repeat))
        engine.dispose()
    if not args.skip_postgres:
        url = fresh_postgres(args.postgres_url)
        upgrade_database(url)
        engine = create_db_engine(url)
        reports.append(run_backend("PostgreSQL", engine, args.points, args.days, args.repeat))
        engine.dispose()

    print_table(reports)
    if args.json_out:
        args.json_out.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
