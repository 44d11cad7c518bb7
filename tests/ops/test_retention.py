"""Retention with a frozen clock: old finished deliveries and old steps go, statistics stay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from bot.app import create_app
from bot.config import Settings
from bot.scheduler import run_retention, run_rollup_refresh
from storage import deliveries, locks
from storage.db import session_scope
from storage.models import Delivery, DeliveryStatus, Step
from tests.conftest import BotClient

NOW = datetime(2024, 9, 15, 0, 0, tzinfo=UTC)
OLD_DAY = "2024-06-03"  # 104 days before NOW
RECENT_DAY = "2024-09-10"  # 5 days before NOW
REPO = {"id": 1001, "full_name": "octo-org/widget"}


def run_payload(run_id: int, day: str) -> dict[str, Any]:
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id, "name": "CI", "run_attempt": 1, "status": "completed", "conclusion": "success",
            "head_branch": "main", "event": "push", "created_at": f"{day}T09:00:00Z",
            "run_started_at": f"{day}T09:00:00Z", "updated_at": f"{day}T09:05:12Z",
        },
        "repository": REPO,
        "installation": {"id": 424242},
    }


def job_payload(job_id: int, run_id: int, name: str, day: str, seconds: int, steps: int) -> dict[str, Any]:
    end = datetime.fromisoformat(f"{day}T09:00:30+00:00") + timedelta(seconds=seconds)
    return {
        "action": "completed",
        "workflow_job": {
            "id": job_id, "run_id": run_id, "run_attempt": 1, "name": name, "workflow_name": "CI",
            "head_branch": "main", "status": "completed", "conclusion": "success",
            "created_at": f"{day}T09:00:00Z", "started_at": f"{day}T09:00:30Z",
            "completed_at": end.isoformat().replace("+00:00", "Z"),
            "steps": [
                {"number": number, "name": f"step {number}", "status": "completed", "conclusion": "success",
                 "started_at": f"{day}T09:00:30Z", "completed_at": f"{day}T09:00:40Z"}
                for number in range(1, steps + 1)
            ],
        },
        "repository": REPO,
        "installation": {"id": 424242},
    }


@pytest.fixture
def idle_bot(settings: Settings) -> Iterator[BotClient]:
    """The app with its worker stopped; the test drains deliveries itself."""
    with TestClient(create_app(settings, start_worker=False)) as client:
        yield BotClient(client)


def send(bot: BotClient, event: str, payload: Any, delivery_id: str) -> None:
    response = bot.send(event, payload, delivery_id=delivery_id, wait=False)
    assert response.status_code in (202, 400), response.text


def set_received(bot: BotClient, delivery_id: str, day: str, status: str | None = None) -> None:
    values: dict[str, Any] = {"received_at": datetime.fromisoformat(f"{day}T10:00:00+00:00")}
    if status is not None:
        values["status"] = status
    with session_scope(bot.app.state.engine) as session:
        session.execute(update(Delivery).where(Delivery.delivery_id == delivery_id).values(**values))


def statistics(bot: BotClient) -> dict[str, Any]:
    views = {}
    for metric in ("build_time", "queue_time", "test_duration"):
        response = bot.client.get("/api/v1/stats", params={"metric": metric, "repo": REPO["full_name"]})
        assert response.status_code == 200
        views[metric] = response.json()
    return views


def test_prune_keeps_statistics(idle_bot: BotClient, settings: Settings) -> None:
    send(idle_bot, "workflow_run", run_payload(50001, OLD_DAY), "old-run")
    send(idle_bot, "workflow_job", job_payload(60001, 50001, "build", OLD_DAY, 312, 3), "old-build")
    send(idle_bot, "workflow_job", job_payload(60002, 50001, "lint", OLD_DAY, 60, 2), "old-lint")
    send(idle_bot, "workflow_run", run_payload(50002, RECENT_DAY), "recent-run")
    send(idle_bot, "workflow_job", job_payload(60003, 50002, "unit tests", RECENT_DAY, 200, 2), "recent-test")
    send(idle_bot, "star", {"action": "created", "repository": REPO}, "old-ignored")
    send(idle_bot, "workflow_run", {"action": "completed", "workflow_run": []}, "old-invalid")
    send(idle_bot, "workflow_run", run_payload(50003, OLD_DAY), "old-failed")
    assert idle_bot.app.state.worker.drain() == 7
    send(idle_bot, "workflow_run", run_payload(50004, OLD_DAY), "old-pending")
    for delivery_id in ("old-run", "old-build", "old-lint", "old-ignored", "old-invalid", "old-pending"):
        set_received(idle_bot, delivery_id, OLD_DAY)
    # A failed delivery waits for a replay however old it is.
    set_received(idle_bot, "old-failed", OLD_DAY, status=DeliveryStatus.FAILED.value)
    for delivery_id in ("recent-run", "recent-test"):
        set_received(idle_bot, delivery_id, RECENT_DAY)
    before = statistics(idle_bot)
    old_run = idle_bot.client.get("/api/v1/runs/50001").json()

    engine = idle_bot.app.state.engine
    assert run_retention(engine, settings, now=NOW)
    assert not run_retention(engine, settings, now=NOW + timedelta(hours=5))
    assert run_rollup_refresh(engine, settings, now=NOW)
    assert not run_rollup_refresh(engine, settings, now=NOW + timedelta(hours=5))

    with idle_bot.session() as session:
        kept = set(session.scalars(select(Delivery.delivery_id)))
        steps_by_job = dict(session.execute(select(Step.job_id, func.count()).group_by(Step.job_id)).all())
        periods = locks.list_periods(session=session, job="retention")
        pending = deliveries.count_by_status(session=session).get("pending")
    assert kept == {"recent-run", "recent-test", "old-pending", "old-failed"}
    assert pending == 1
    assert steps_by_job == {60003: 2}
    assert periods == ["2024-09-15"]
    assert statistics(idle_bot) == before
    assert before["build_time"]["count"] == 3
    assert before["queue_time"]["count"] == 3
    run_after = idle_bot.client.get("/api/v1/runs/50001").json()
    jobs_after = run_after["attempts"][0]["jobs"]
    assert [(job["name"], job["duration_s"], job["steps"]) for job in jobs_after] == [
        (job["name"], job["duration_s"], []) for job in old_run["attempts"][0]["jobs"]
    ]
    assert run_after["attempts"][0]["duration_s"] == 312.0


def test_prune_uses_configured_days(idle_bot: BotClient, settings: Settings) -> None:
    send(idle_bot, "star", {"action": "created", "repository": REPO}, "ignored-20-days")
    assert idle_bot.app.state.worker.drain() == 0
    set_received(idle_bot, "ignored-20-days", "2024-08-26")
    longer = settings.model_copy(update={"retention_deliveries_days": 30.0})

    assert run_retention(idle_bot.app.state.engine, longer, now=NOW)
    with idle_bot.session() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1
