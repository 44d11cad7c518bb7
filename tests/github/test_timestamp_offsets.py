"""Timestamps with UTC offsets (`+02:00`, `-04:00`, `+0100`) are stored as the same instants in
UTC, and stored values compare correctly with UTC values in SQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from storage.models import Job, RunAttempt, Step
from tests.conftest import BotClient
from tests.github.conftest import (
    api_jobs,
    api_run,
    load_fixture,
    send_steps,
    stat_count,
    with_changes,
)

JOB_STEP, RUN_STEP = range(2)


def test_offsets_normalised_to_utc(bot: BotClient) -> None:
    steps = load_fixture("timestamp_offsets.json")

    responses = send_steps(bot, steps)

    assert [response.status_code for response in responses] == [202, 202]
    run = api_run(bot, 30017)
    job = api_jobs(run)[50171]
    assert job["created_at"] == "2024-06-03T09:59:50Z"
    assert job["started_at"] == "2024-06-03T10:00:00Z"
    assert job["completed_at"] == "2024-06-03T10:05:12Z"
    assert job["queue_s"] == 10.0
    assert job["duration_s"] == 312.0
    assert [(step["name"], step["duration_s"]) for step in job["steps"]] == [
        ("Set up job", 2.0),
        ("Run make", 310.0),
    ]
    attempt = run["attempts"][0]
    assert attempt["started_at"] == "2024-06-03T09:59:50Z"
    assert attempt["completed_at"] == "2024-06-03T10:05:22Z"
    assert attempt["duration_s"] == 332.0


def test_stored_times_compare_as_utc(bot: BotClient) -> None:
    steps = load_fixture("timestamp_offsets.json")

    send_steps(bot, steps)

    started = datetime(2024, 6, 3, 10, 0, 0, tzinfo=UTC)
    with bot.session() as session:
        job = session.get(Job, 50171)
        assert job is not None
        assert job.started_at == started
        assert job.created_at == datetime(2024, 6, 3, 9, 59, 50, tzinfo=UTC)
        assert session.scalars(select(Job.id).where(Job.started_at == started)).all() == [50171]
        assert session.scalars(select(Job.id).where(Job.completed_at > started)).all() == [50171]
        step = session.get(Step, (50171, 2))
        assert step is not None
        assert step.started_at == datetime(2024, 6, 3, 10, 0, 2, tzinfo=UTC)
        attempt = session.get(RunAttempt, (30017, 1))
        assert attempt is not None
        assert attempt.completed_at == datetime(2024, 6, 3, 10, 5, 22, tzinfo=UTC)

    # The queue-time point is stamped with the job's start, 10:00:00Z.
    assert (
        bot.client.get(
            "/api/v1/stats", params={"metric": "queue_time", "since": "2024-06-03T09:59:59Z"}
        ).json()["count"]
        == 1
    )
    assert (
        bot.client.get(
            "/api/v1/stats", params={"metric": "queue_time", "since": "2024-06-03T12:00:01+02:00"}
        ).json()["count"]
        == 0
    )
    assert stat_count(bot, "build_time") == 1


def test_basic_format_offsets_accepted(bot: BotClient) -> None:
    payload = load_fixture("timestamp_offsets.json")[JOB_STEP]["payload"]
    payload = with_changes(
        payload,
        "workflow_job",
        created_at="2024-06-03T10:59:50+0100",
        started_at="2024-06-03T05:30:00-0430",
        completed_at="2024-06-03T10:05:12.000+00:00",
        steps=[],
    )

    response = bot.send("workflow_job", payload)

    assert response.status_code == 202
    job = api_jobs(api_run(bot, 30017))[50171]
    assert job["created_at"] == "2024-06-03T09:59:50Z"
    assert job["started_at"] == "2024-06-03T10:00:00Z"
    assert job["queue_s"] == 10.0
    assert job["duration_s"] == 312.0
