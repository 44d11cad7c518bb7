"""StatusDashboard: the overall status rules, persistence across instances, retries, input
checks and rendering."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from bot.dashboard import PublishStatus, StatusDashboard, overall_status

P, R, C, F, S, X = (
    PublishStatus.PENDING,
    PublishStatus.IN_PROGRESS,
    PublishStatus.COMPLETED,
    PublishStatus.FAILED,
    PublishStatus.SKIPPED,
    PublishStatus.CANCELLED,
)


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ([], PublishStatus.PENDING),
        ([P, P], PublishStatus.PENDING),
        ([C, R], PublishStatus.IN_PROGRESS),
        ([C, P], PublishStatus.IN_PROGRESS),
        ([F, R], PublishStatus.FAILED),
        ([C, X, P], PublishStatus.FAILED),
        ([C, C], PublishStatus.COMPLETED),
        ([S, S], PublishStatus.SKIPPED),
        ([F], PublishStatus.FAILED),
        ([S, F], PublishStatus.FAILED),
        ([C, F, C], PublishStatus.FAILED),
        ([C, C, F], PublishStatus.PARTIAL),
        ([C, C, S], PublishStatus.PARTIAL),
        ([C, F, S], PublishStatus.PARTIAL),
        ([C, X], PublishStatus.PARTIAL),
        ([C, S, C], PublishStatus.COMPLETED),
    ],
)
def test_overall_status_rules(stages: list[PublishStatus], expected: PublishStatus) -> None:
    assert overall_status(stages) == expected


def test_status_persists_across_instances(engine: Engine) -> None:
    first = StatusDashboard("Octo-Org/Widget", engine=engine)
    first.current_version = "v2.1.0"
    first.update_status("build", PublishStatus.COMPLETED, "ok")
    first.update_status("publish", PublishStatus.IN_PROGRESS)

    second = StatusDashboard("octo-org/widget", "2.1.0", engine=engine)
    status = second.get_current_status()

    assert status["version"] == "2.1.0"
    assert status["status"] == PublishStatus.IN_PROGRESS
    assert status["stages"] == {"build": PublishStatus.COMPLETED, "publish": PublishStatus.IN_PROGRESS}
    other = StatusDashboard("octo-org/widget", "2.2.0", engine=engine)
    assert other.get_current_status()["stages"] == {}


def test_retry_after_failure_restarts_stage(engine: Engine) -> None:
    dashboard = StatusDashboard(engine=engine, version="1.0.0")
    dashboard.update_status("publish", PublishStatus.IN_PROGRESS)
    dashboard.update_status("publish", PublishStatus.FAILED, "upload timed out")
    assert dashboard.get_current_status()["status"] == PublishStatus.FAILED

    dashboard.update_status("publish", PublishStatus.IN_PROGRESS, "retrying")
    dashboard.update_status("publish", PublishStatus.COMPLETED)

    exported = dashboard.export_status()
    assert exported["status"] == "completed"
    assert exported["stages"][0]["message"] == ""
    assert exported["stages"][0]["duration_s"] is not None
    assert exported["stages"][0]["duration_s"] >= 0


def test_export_is_json(engine: Engine) -> None:
    dashboard = StatusDashboard("octo-org/widget", "3.0.0", engine=engine)
    dashboard.update_status("build", PublishStatus.COMPLETED)
    dashboard.update_status("docs", "skipped", "no docs change")

    exported = dashboard.export_status()

    assert json.loads(json.dumps(exported)) == exported
    assert exported["status"] == "partial"
    assert exported["counts"] == {"completed": 1, "skipped": 1}
    assert exported["repo"] == "octo-org/widget"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: d.update_status("build", "done"), "invalid stage status 'done'"),
        (lambda d: d.update_status("build", PublishStatus.PARTIAL), "invalid stage status"),
        (lambda d: d.update_status("", PublishStatus.COMPLETED), "invalid stage name ''"),
        (lambda d: d.update_status("build", PublishStatus.COMPLETED, None), "invalid message None"),
    ],
)
def test_update_rejects_bad_input(engine: Engine, call, message: str) -> None:  # type: ignore[no-untyped-def]
    dashboard = StatusDashboard(engine=engine, version="1.0.0")

    with pytest.raises(ValueError, match=message):
        call(dashboard)


def test_update_needs_version(engine: Engine) -> None:
    dashboard = StatusDashboard(engine=engine)

    with pytest.raises(ValueError, match="set current_version first"):
        dashboard.update_status("build", PublishStatus.COMPLETED)
    with pytest.raises(ValueError, match="invalid version ''"):
        dashboard.current_version = ""


def test_render_shows_text_literally(engine: Engine) -> None:
    dashboard = StatusDashboard("octo-org/widget", "1.0.0", engine=engine)
    dashboard.update_status("build\x1b[2J", PublishStatus.FAILED, "boom\x07 <b>")

    rendered = dashboard.render_dashboard()

    assert rendered.splitlines()[0] == "Release 1.0.0 of octo-org/widget: ✗ FAILED"
    assert "\x1b" not in rendered
    assert "\x07" not in rendered
    assert "build\\u001b[2J" in rendered
    assert "boom\\u0007 <b>" in rendered
