"""The release guide's examples, with only their import lines changed, against a real database.

Each example runs as the guide shows it, in order, and the second uses the first's `tracker`.
The tests check what each example prints and what it stored.
"""

from __future__ import annotations

import pytest

from bot import (
    AlertChannel,
    BuildProfiler,
    FailureAlerter,
    MetricsTracker,
    MetricType,
    PublishStatus,
    StatusDashboard,
)
from bot.engines import resolve_engine
from storage.db import session_scope
from storage.metrics import MetricFilter, calculate_statistics


def run_recording_metrics() -> dict[str, object]:
    tracker = MetricsTracker()

    tracker.record_metric(
        "build_time",
        45.5,
        MetricType.BUILD_TIME,
        tags={"branch": "main", "version": "1.0.0"}
    )

    tracker.record_metric(
        "test_duration",
        120.3,
        MetricType.TEST_DURATION,
        tags={"suite": "unit"}
    )
    return {"tracker": tracker}


def run_analyzing_performance(tracker: MetricsTracker) -> dict[str, object]:
    # Get statistics
    stats = tracker.calculate_statistics(MetricType.BUILD_TIME)
    print(f"Build Time Stats:")  # noqa: F541 - as the guide writes it
    print(f"  Count: {stats['count']}")
    print(f"  Average: {stats['mean']:.2f}s")
    print(f"  Min: {stats['min']:.2f}s")
    print(f"  Max: {stats['max']:.2f}s")

    # Profile build stages
    profiler = BuildProfiler()
    profiler.record_stage("compile", 30)
    profiler.record_stage("test", 120)
    profiler.record_stage("package", 10)

    # Identify bottlenecks
    bottlenecks = profiler.get_bottlenecks(threshold=0.1)
    for stage in bottlenecks:
        print(f"Bottleneck: {stage.name}")

    # Generate report
    report = profiler.generate_report()
    print(report)
    return {"stats": stats, "report": report}


def run_status_monitoring() -> dict[str, object]:
    dashboard = StatusDashboard()
    dashboard.current_version = "1.0.0"

    # Track progress
    dashboard.update_status("build", PublishStatus.IN_PROGRESS)
    dashboard.update_status("build", PublishStatus.COMPLETED, "Build succeeded")
    dashboard.update_status("test", PublishStatus.IN_PROGRESS)
    dashboard.update_status("test", PublishStatus.COMPLETED, "All tests passed")

    # Display status
    print(dashboard.render_dashboard())

    # Export for monitoring systems
    status = dashboard.export_status()
    return {"status": status}


def run_alerting_on_failures() -> dict[str, object]:
    alerter = FailureAlerter()
    alerter.configure_channel(AlertChannel.SLACK, {"webhook": "https://..."})

    # Send alert on failure
    try:
        # Publish code
        pass
    except Exception as e:  # noqa: BLE001 - as the guide writes it
        alerter.send_alert(
            "Release Failed",
            str(e),
            channel=AlertChannel.SLACK,
            severity="critical"
        )
    return {"alerter": alerter}


def test_guide_examples_print_promised(configured_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    namespace = run_recording_metrics()
    analysis = run_analyzing_performance(namespace["tracker"])  # type: ignore[arg-type]
    monitoring = run_status_monitoring()
    alerting = run_alerting_on_failures()
    output = capsys.readouterr().out.splitlines()

    assert output[:5] == [
        "Build Time Stats:",
        "  Count: 1",
        "  Average: 45.50s",
        "  Min: 45.50s",
        "  Max: 45.50s",
    ]
    assert output[5:7] == ["Bottleneck: test", "Bottleneck: compile"]
    report = analysis["report"]
    assert isinstance(report, str)
    assert report in "\n".join(output)
    assert "compile" in report
    assert "Bottlenecks" in report

    dashboard_lines = [line for line in output if line.startswith(("Release 1.0.0", "  ✓"))]
    assert dashboard_lines[0] == "Release 1.0.0: ✓ COMPLETED"
    assert "build" in dashboard_lines[1]
    assert "Build succeeded" in dashboard_lines[1]
    assert "test" in dashboard_lines[2]
    assert "All tests passed" in dashboard_lines[2]

    status = monitoring["status"]
    assert isinstance(status, dict)
    assert status["version"] == "1.0.0"
    assert status["status"] == "completed"
    assert [stage["name"] for stage in status["stages"]] == ["build", "test"]

    alerter = alerting["alerter"]
    assert alerter.list_channels() == [AlertChannel.SLACK]  # type: ignore[attr-defined]
    assert alerter.get_alerts() == []  # type: ignore[attr-defined]


def test_guide_metrics_reach_bot_statistics(configured_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_recording_metrics()
    capsys.readouterr()

    with session_scope(resolve_engine(database_url=configured_database)) as session:
        build = calculate_statistics(session=session, metric_filter=MetricFilter(metric_type="build_time"))
        tests = calculate_statistics(session=session, metric_filter=MetricFilter(metric_type="test_duration"))
    assert build["count"] == 1
    assert build["p50"] == 45.5
    assert tests["count"] == 1
    assert tests["mean"] == 120.3
