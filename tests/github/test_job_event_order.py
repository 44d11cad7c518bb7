"""`workflow_job` events delivered out of order: a completed job never goes back to running."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from storage.models import Job
from tests.conftest import BotClient
from tests.github.conftest import api_jobs, api_run, load_fixture, send_steps

QUEUED, COMPLETED, IN_PROGRESS = range(3)


def check_completed_job(bot: BotClient) -> None:
    run = api_run(bot, 30002)
    jobs = api_jobs(run)
    assert list(jobs) == [50001]
    job = jobs[50001]
    assert job["status"] == "completed"
    assert job["conclusion"] == "success"
    assert job["started_at"] == "2024-06-03T10:00:20Z"
    assert job["completed_at"] == "2024-06-03T10:05:32Z"
    assert job["duration_s"] == 312.0
    assert job["queue_s"] == 20.0
    steps = {step["name"]: step for step in job["steps"]}
    assert steps["Run make test"]["duration_s"] == 300.0
    assert steps["Run actions/checkout@v4"]["status"] == "completed"
    assert steps["Run actions/checkout@v4"]["duration_s"] == 8.0
    assert [step["number"] for step in job["steps"]] == [1, 2, 3, 4]


def test_late_in_progress_keeps_completed(bot: BotClient) -> None:
    steps = load_fixture("job_events_out_of_order.json")

    responses = send_steps(bot, steps)

    assert [response.status_code for response in responses] == [202, 202, 202]
    check_completed_job(bot)
    with bot.session() as session:
        running = session.scalars(
            select(Job).where(Job.run_id == 30002, Job.status != "completed")
        ).all()
    assert running == []


@pytest.mark.parametrize("order", list(itertools.permutations((QUEUED, COMPLETED, IN_PROGRESS))))
def test_any_order_same_job(bot: BotClient, order: tuple[int, ...]) -> None:
    steps = load_fixture("job_events_out_of_order.json")

    send_steps(bot, [steps[index] for index in order])

    check_completed_job(bot)
