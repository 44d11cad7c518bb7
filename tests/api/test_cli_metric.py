"""`release-bot metric record` and `metric stats` through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.tracker import MetricsTracker, MetricType


def run(*arguments: str, database_url: str) -> object:
    return CliRunner().invoke(app, list(arguments), env={"DATABASE_URL": database_url})


def test_record_stores_tags(configured_database: str) -> None:
    result = run(
        "metric", "record", "build_time", "45.5", "--type", "build_time",
        "--tag", "branch=main", "--tag", "version=1.0.0", "--timestamp", "2024-06-03T09:00:00Z", "--json",
        database_url=configured_database,
    )

    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    printed = json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[attr-defined]
    assert printed["value"] == 45.5
    assert printed["tags"] == {"branch": "main", "version": "1.0.0"}
    assert printed["timestamp"] == "2024-06-03T09:00:00Z"
    stored = MetricsTracker(configured_database).get_metrics(MetricType.BUILD_TIME)
    assert [point.value for point in stored] == [45.5]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("x", "nan"), "invalid value 'nan'"),
        (("x", "fast"), "invalid value 'fast'"),
        (("x", "1", "--tag", "branch"), "invalid --tag 'branch'"),
        (("x", "1", "--type", "compile"), "invalid metric type 'compile'"),
        (("x", "1", "--timestamp", "soon"), "invalid --timestamp 'soon'"),
    ],
)
def test_record_rejects_bad_input(configured_database: str, arguments: tuple[str, ...], message: str) -> None:
    result = run("metric", "record", *arguments, database_url=configured_database)

    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert message in result.stderr  # type: ignore[attr-defined]


def test_stats_prints_json(configured_database: str) -> None:
    tracker = MetricsTracker(configured_database)
    for value in (1.0, 2.0, 3.0):
        tracker.record_metric("build_time", value, MetricType.BUILD_TIME, tags={"branch": "main"})

    result = run("metric", "stats", "--type", "build_time", "--tag", "branch=main", "--json", database_url=configured_database)

    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    printed = json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[attr-defined]
    assert printed["count"] == 3
    assert printed["p50"] == 2.0
