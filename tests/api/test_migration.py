"""Migration 0002 on a database that already contains metric points: buckets and daily rollups are
filled, statistics read them, and the downgrade removes them again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from storage import metric_rollups
from storage.db import create_db_engine, downgrade_database, session_scope, upgrade_database
from storage.metrics import MetricFilter, calculate_statistics
from tests.conftest import POSTGRES_URL, create_postgres_database

POINTS = [
    ("2024-06-01 09:00:00", 100.0, "octo-org/widget"),
    ("2024-06-01 23:59:59", 300.0, "octo-org/widget"),
    ("2024-06-02 00:00:00", 200.0, "octo-org/widget"),
    ("2024-06-02 12:00:00", 50.0, None),
]


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database with no tables: a SQLite file, or a new PostgreSQL database."""
    if not (POSTGRES_URL or "").startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    name = f"release_bot_migrate_{uuid.uuid4().hex[:10]}"
    url = create_postgres_database(POSTGRES_URL, name)  # type: ignore[arg-type]
    yield url
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_backfills_rollups(empty_database_url: str) -> None:
    upgrade_database(empty_database_url, "0001")
    engine = create_db_engine(empty_database_url)
    # PostgreSQL reads a time without an offset in the session's time zone; SQLite stores naive UTC.
    offset = "+00" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as connection:
        for moment, value, repo in POINTS:
            connection.execute(
                text(
                    "INSERT INTO metric (name, metric_type, value, timestamp, repo, tags) "
                    "VALUES ('build_time', 'build_time', :value, :moment, :repo, '{}')"
                ),
                {"value": value, "moment": moment + offset, "repo": repo},
            )
    engine.dispose()

    upgrade_database(empty_database_url, "0002")

    engine = create_db_engine(empty_database_url)
    with engine.connect() as connection:
        buckets = connection.execute(text("SELECT value, value_bucket FROM metric ORDER BY id")).all()
        rollups = connection.execute(
            text("SELECT repo, day, count, total, min_value, max_value FROM metric_rollup ORDER BY repo, day")
        ).all()
    assert [bucket for _, bucket in buckets] == [metric_rollups.value_bucket(value) for value, _ in buckets]
    assert [(repo, str(day), count, total, low, high) for repo, day, count, total, low, high in rollups] == [
        ("", "2024-06-02", 1, 50.0, 50.0, 50.0),
        ("octo-org/widget", "2024-06-01", 2, 400.0, 100.0, 300.0),
        ("octo-org/widget", "2024-06-02", 1, 200.0, 200.0, 200.0),
    ]
    with session_scope(engine) as session:
        result = calculate_statistics(
            session=session, metric_filter=MetricFilter(metric_type="build_time", tags={"repo": "octo-org/widget"}), exact_limit=0
        )
    assert result["count"] == 3
    assert result["total"] == 600.0
    assert abs(result["p50"] - 200.0) <= 200.0 * metric_rollups.RELATIVE_ACCURACY
    engine.dispose()

    downgrade_database(empty_database_url, "0001")
    engine = create_db_engine(empty_database_url)
    inspector = inspect(engine)
    assert "metric_rollup" not in inspector.get_table_names()
    assert "value_bucket" not in {column["name"] for column in inspector.get_columns("metric")}
    engine.dispose()
