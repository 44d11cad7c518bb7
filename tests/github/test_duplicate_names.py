"""Jobs are keyed by job id and steps by step number, so repeated names never merge."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import Job, Step
from tests.conftest import BotClient
from tests.github.conftest import api_jobs, api_run, load_fixture, send_steps, stat_count


def test_jobs_with_same_name_kept_apart(bot: BotClient) -> None:
    steps = load_fixture("duplicate_names.json")

    responses = send_steps(bot, steps)

    assert [response.status_code for response in responses] == [202, 202, 202]
    jobs = api_jobs(api_run(bot, 30009))
    assert {job_id: (job["name"], job["duration_s"]) for job_id, job in jobs.items()} == {
        50091: ("test", 60.0),
        50092: ("test", 120.0),
        50093: ("test", 180.0),
    }
    assert sum(job["duration_s"] for job in jobs.values()) == 360.0
    assert stat_count(bot, "test_duration") == 3
    with bot.session() as session:
        assert len(session.scalars(select(Job).where(Job.run_id == 30009)).all()) == 3


def test_steps_with_same_name_kept_apart(bot: BotClient) -> None:
    steps = load_fixture("duplicate_names.json")

    send_steps(bot, steps)

    job = api_jobs(api_run(bot, 30009))[50091]
    assert [(step["number"], step["name"], step["duration_s"]) for step in job["steps"]] == [
        (1, "Set up job", 2.0),
        (2, "Run actions/checkout@v4", 10.0),
        (3, "Run make test", 21.0),
        (4, "Run actions/checkout@v4", 25.0),
        (5, "Complete job", 2.0),
    ]
    with bot.session() as session:
        checkouts = session.scalars(
            select(Step).where(Step.job_id == 50091, Step.name == "Run actions/checkout@v4")
        ).all()
    assert sorted(step.duration_s for step in checkouts) == [10.0, 25.0]
