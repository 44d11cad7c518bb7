"""MetricsTracker: input checks, listing, export, summary, clearing, and points reaching the
bot's own statistics endpoint."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from bot.tracker import MetricsTracker, MetricType
from storage import metrics
from storage.db import session_scope
from tests.conftest import BotClient

START = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "45.5", None, [1]])
def test_record_rejects_bad_value(engine: Engine, value: object) -> None:
    tracker = MetricsTracker(engine=engine)

    with pytest.raises(ValueError, match="invalid metric value") as raised:
        tracker.record_metric("build_time", value, MetricType.BUILD_TIME)  # type: ignore[arg-type]

    assert repr(value) in str(raised.value)


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [({"branch": 1}, "tag 'branch'"), ({1: "x"}, "tag key 1"), ({"repo": "x" * 201}, "tag 'repo'"), ("a=b", "invalid tags")],
)
def test_record_rejects_bad_tags(engine: Engine, tags: object, fragment: str) -> None:
    tracker = MetricsTracker(engine=engine)

    with pytest.raises(ValueError, match=fragment):
        tracker.record_metric("build_time", 1.0, MetricType.BUILD_TIME, tags=tags)  # type: ignore[arg-type]


def test_record_rejects_unknown_type(engine: Engine) -> None:
    tracker = MetricsTracker(engine=engine)

    with pytest.raises(ValueError, match="invalid metric type 'compile_time'"):
        tracker.record_metric("x", 1.0, "compile_time")


def test_record_stores_point(engine: Engine) -> None:
    tracker = MetricsTracker(engine=engine)

    point = tracker.record_metric(
        "deploy", 12, "deployment_time", tags={"repo": "Octo-Org/Widget", "env": "prod"}, timestamp=datetime(2024, 6, 1, 9)
    )

    assert point.value == 12.0
    assert point.metric_type is MetricType.DEPLOYMENT_TIME
    assert point.timestamp == datetime(2024, 6, 1, 9, tzinfo=UTC)
    assert point.tags == {"repo": "octo-org/widget", "env": "prod"}


def test_get_metrics_filters_newest_first(engine: Engine) -> None:
    tracker = MetricsTracker(engine=engine)
    for hour in range(5):
        tracker.record_metric("build_time", float(hour), MetricType.BUILD_TIME, tags={"branch": "main"}, timestamp=START + timedelta(hours=hour))
    tracker.record_metric("build_time", 99.0, MetricType.BUILD_TIME, tags={"branch": "dev"}, timestamp=START)
    tracker.record_metric("other", 7.0, timestamp=START)

    points = tracker.get_metrics(MetricType.BUILD_TIME, {"branch": "main"}, since=START + timedelta(hours=1), until=START + timedelta(hours=4), limit=2)

    assert [point.value for point in points] == [3.0, 2.0]
    assert len(tracker.get_metrics(MetricType.CUSTOM)) == 1
    with pytest.raises(ValueError, match="invalid limit 0"):
        tracker.get_metrics(limit=0)


def test_export_is_json(engine: Engine) -> None:
    tracker = MetricsTracker(engine=engine)
    tracker.record_metric("build_time", 45.5, MetricType.BUILD_TIME, tags={"version": "1.0.0"}, timestamp=START)

    exported = tracker.export_metrics()

    assert json.loads(json.dumps(exported)) == exported
    assert exported[0]["timestamp"] == "2024-06-01T00:00:00Z"
    assert exported[0]["type"] == "build_time"
    assert exported[0]["tags"] == {"version": "1.0.0"}


def test_summary_by_type(engine: Engine) -> None:
    tracker = MetricsTracker(engine=engine)
    tracker.record_metric("build_time", 10.0, MetricType.BUILD_TIME, timestamp=START)
    tracker.record_metric("build_time", 30.0, MetricType.BUILD_TIME, timestamp=START + timedelta(days=2))
    tracker.record_metric("queue", 4.0, MetricType.QUEUE_TIME, timestamp=START)

    summary = tracker.get_metric_summary()

    assert set(summary) == {"build_time", "queue_time"}
    assert summary["build_time"]["count"] == 2
    assert summary["build_time"]["mean"] == 20.0
    assert summary["build_time"]["first_at"] == START
    assert summary["build_time"]["last_at"] == START + timedelta(days=2)


def test_clear_keeps_webhook_points(engine: Engine) -> None:
    tracker = MetricsTracker(engine=engine)
    tracker.record_metric("build_time", 10.0, MetricType.BUILD_TIME, timestamp=START)
    with session_scope(engine) as session:
        metrics.upsert_metric(
            session=session, name="build_time", metric_type="build_time", value=312.0,
            timestamp=START, tags={"repo": "octo-org/widget"}, source_key="build_time:run:1:1",
        )

    assert tracker.clear_metrics() == 1
    assert [point.value for point in tracker.get_metrics()] == [312.0]
    assert tracker.calculate_statistics(MetricType.BUILD_TIME)["count"] == 1
    assert tracker.clear_metrics(include_derived=True) == 1
    assert tracker.calculate_statistics(MetricType.BUILD_TIME)["count"] == 0


def test_since_accepts_duration_text(engine: Engine) -> None:
    tracker = MetricsTracker(engine=engine)
    tracker.record_metric("build_time", 1.0, MetricType.BUILD_TIME, timestamp=datetime.now(UTC) - timedelta(days=10))
    tracker.record_metric("build_time", 2.0, MetricType.BUILD_TIME)

    assert tracker.calculate_statistics(MetricType.BUILD_TIME, since="7d")["count"] == 1
    with pytest.raises(ValueError, match="invalid time window"):
        tracker.calculate_statistics(MetricType.BUILD_TIME, since="last week")


def test_script_points_in_stats_endpoint(bot: BotClient) -> None:
    tracker = MetricsTracker(engine=bot.app.state.engine)
    for value in (100.0, 200.0, 300.0):
        tracker.record_metric("build_time", value, MetricType.BUILD_TIME, tags={"repo": "Octo-Org/Widget", "branch": "main"})

    response = bot.client.get("/api/v1/stats", params={"metric": "build_time", "repo": "octo-org/widget", "branch": "main"})

    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert response.json()["p50"] == 200.0
    assert response.json()["mean"] == 200.0
