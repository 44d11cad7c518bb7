"""Job and step durations are never negative; work that never ran has no execution time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.models import Metric, Step
from tests.conftest import BotClient
from tests.github.conftest import (
    api_jobs,
    api_run,
    load_fixture,
    send_steps,
    stat_count,
    with_changes,
)

BUILD, SKIPPED, CANCELLED = range(3)


def durations_in(value: Any) -> list[float]:
    """Return every number under a `*_s` key anywhere in an API response."""
    found: list[float] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("_s") and isinstance(item, (int, float)):
                found.append(item)
            else:
                found.extend(durations_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(durations_in(item))
    return found


def test_skipped_and_cancelled_jobs_not_timed(bot: BotClient) -> None:
    steps = load_fixture("skipped_cancelled_jobs.json")

    responses = send_steps(bot, steps)

    assert [response.status_code for response in responses] == [202, 202, 202]
    run = api_run(bot, 30005)
    jobs = api_jobs(run)
    assert jobs[50051]["duration_s"] == 312.0
    assert jobs[50051]["queue_s"] == 10.0

    assert jobs[50052]["conclusion"] == "skipped"
    assert jobs[50052]["duration_s"] is None
    assert jobs[50052]["queue_s"] is None

    assert jobs[50053]["conclusion"] == "cancelled"
    assert jobs[50053]["duration_s"] is None
    assert jobs[50053]["queue_s"] is None
    assert [
        (step["number"], step["conclusion"], step["duration_s"]) for step in jobs[50053]["steps"]
    ] == [
        (1, "cancelled", None),
        (2, "skipped", None),
    ]

    assert sum(job["duration_s"] or 0.0 for job in jobs.values()) == 312.0
    assert all(duration >= 0 for duration in durations_in(run))
    assert stat_count(bot, "queue_time") == 1
    with bot.session() as session:
        assert all(metric.value >= 0 for metric in session.scalars(select(Metric)))


def test_job_completed_before_start_is_zero(bot: BotClient) -> None:
    # A job that got a runner and was cancelled at once can still report its completion a
    # second before its start.
    payload = load_fixture("skipped_cancelled_jobs.json")[BUILD]["payload"]
    payload = with_changes(
        payload,
        "workflow_job",
        conclusion="cancelled",
        started_at="2024-06-03T12:00:10Z",
        completed_at="2024-06-03T12:00:09Z",
        steps=[
            {
                "name": "Set up job",
                "status": "completed",
                "conclusion": "cancelled",
                "number": 1,
                "started_at": "2024-06-03T12:00:10Z",
                "completed_at": "2024-06-03T12:00:08Z",
            }
        ],
    )

    bot.send("workflow_job", payload)

    job = api_jobs(api_run(bot, 30005))[50051]
    assert job["duration_s"] == 0.0
    assert job["queue_s"] == 10.0
    assert job["steps"][0]["duration_s"] == 0.0


def test_step_with_null_times_stored(bot: BotClient) -> None:
    steps = load_fixture("skipped_cancelled_jobs.json")

    send_steps(bot, [steps[CANCELLED]])

    with bot.session() as session:
        stored = session.scalars(
            select(Step).where(Step.job_id == 50053).order_by(Step.number)
        ).all()
    assert [
        (step.name, step.started_at, step.completed_at, step.duration_s) for step in stored
    ] == [
        ("Set up job", None, None, None),
        ("Run e2e suite", None, None, None),
    ]
