"""Event sequences of whole runs: jobs moving through their states, cancellation, matrix jobs,
out-of-order runs, and deliveries repeated under the same or a new delivery id."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from storage.models import Delivery, Deployment, Job, Metric, Release
from tests.conftest import BotClient
from tests.github.conftest import (
    api_jobs,
    api_run,
    count_rows,
    delivery_statuses,
    load_fixture,
    stat_count,
)

RUN_ID = 60001
CREATED = datetime(2024, 7, 1, 8, 0, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def job_event(
    job_id: int,
    status: str,
    *,
    name: str = "build",
    attempt: int = 1,
    queued_s: int = 10,
    ran_s: int = 60,
    conclusion: str = "success",
) -> dict[str, Any]:
    """Return a `workflow_job` payload of a job of RUN_ID as GitHub sends it in each status.

    The job is created at CREATED, starts `queued_s` later and runs for `ran_s`.
    """
    payload = load_fixture("workflow_job.completed.json")
    job = payload["workflow_job"]
    started = CREATED + timedelta(seconds=queued_s)
    completed = started + timedelta(seconds=ran_s)
    job.update(
        id=job_id,
        run_id=RUN_ID,
        run_attempt=attempt,
        name=name,
        status=status,
        created_at=iso(CREATED),
        started_at=iso(started),
        completed_at=iso(completed),
        conclusion=conclusion,
        html_url=f"https://github.com/octo-org/widget/actions/runs/{RUN_ID}/job/{job_id}",
        steps=[
            {
                "name": "Set up job",
                "status": "completed",
                "conclusion": "success",
                "number": 1,
                "started_at": iso(started),
                "completed_at": iso(started + timedelta(seconds=1)),
            },
            {
                "name": "Run make",
                "status": "completed",
                "conclusion": conclusion,
                "number": 2,
                "started_at": iso(started + timedelta(seconds=1)),
                "completed_at": iso(completed),
            },
        ],
    )
    payload["action"] = status
    if status != "completed":
        job.update(conclusion=None, completed_at=None)
        job["steps"][1].update(status="in_progress", conclusion=None, completed_at=None)
    if status in ("queued", "waiting"):
        # GitHub sets `started_at` to `created_at` until a runner picks the job up.
        job.update(
            started_at=iso(CREATED),
            steps=[],
            runner_id=None,
            runner_name=None,
            runner_group_id=None,
            runner_group_name=None,
        )
    return payload


def run_event(
    status: str, *, attempt: int = 1, conclusion: str = "success", ran_s: int = 360
) -> dict[str, Any]:
    """Return a `workflow_run` payload of RUN_ID, started at CREATED and lasting `ran_s` when completed."""
    payload = load_fixture("workflow_run.completed.json")
    run = payload["workflow_run"]
    run.update(
        id=RUN_ID,
        run_attempt=attempt,
        status=status,
        conclusion=conclusion,
        updated_at=iso(CREATED + timedelta(seconds=ran_s)),
    )
    payload["action"] = {"queued": "requested"}.get(status, status)
    if status != "completed":
        run.update(conclusion=None, updated_at=iso(CREATED + timedelta(seconds=5)))
    return payload


def test_jobs_move_through_states(bot: BotClient) -> None:
    jobs = {
        70001: ("build", 10, 60),
        70002: ("test (3.11, ubuntu)", 20, 120),
        70003: ("lint", 30, 30),
    }

    for job_id, (name, queued_s, ran_s) in jobs.items():
        bot.send(
            "workflow_job", job_event(job_id, "queued", name=name, queued_s=queued_s, ran_s=ran_s)
        )
    queued = api_jobs(api_run(bot, RUN_ID))
    assert {job_id: job["status"] for job_id, job in queued.items()} == dict.fromkeys(
        jobs, "queued"
    )
    assert {job["queue_s"] for job in queued.values()} == {None}

    for job_id in (70001, 70002):
        name, queued_s, ran_s = jobs[job_id]
        bot.send(
            "workflow_job",
            job_event(job_id, "in_progress", name=name, queued_s=queued_s, ran_s=ran_s),
        )
    running = api_jobs(api_run(bot, RUN_ID))
    assert running[70001]["status"] == "in_progress"
    assert running[70001]["queue_s"] == 10.0
    assert running[70001]["duration_s"] is None
    assert running[70002]["queue_s"] == 20.0
    assert running[70003]["status"] == "queued"
    assert stat_count(bot, "queue_time") == 0

    for job_id in (70002, 70003, 70001):
        name, queued_s, ran_s = jobs[job_id]
        bot.send(
            "workflow_job",
            job_event(job_id, "completed", name=name, queued_s=queued_s, ran_s=ran_s),
        )
    bot.send("workflow_run", run_event("completed"))

    run = api_run(bot, RUN_ID)
    done = api_jobs(run)
    assert {
        job_id: (job["status"], job["queue_s"], job["duration_s"]) for job_id, job in done.items()
    } == {
        70001: ("completed", 10.0, 60.0),
        70002: ("completed", 20.0, 120.0),
        70003: ("completed", 30.0, 30.0),
    }
    assert run["duration_s"] == 360.0
    assert stat_count(bot, "queue_time") == 3
    assert stat_count(bot, "build_time") == 1
    # "test (3.11, ubuntu)" and "lint" match the default test-job patterns.
    assert stat_count(bot, "test_duration") == 2
    with bot.session() as session:
        assert set(delivery_statuses(session).values()) == {"done"}


def test_cancelled_run_closes_queued_jobs(bot: BotClient) -> None:
    bot.send("workflow_job", job_event(70001, "completed"))
    bot.send("workflow_job", job_event(70002, "in_progress", name="e2e"))
    bot.send("workflow_job", job_event(70003, "queued", name="deploy"))

    bot.send("workflow_run", run_event("completed", conclusion="cancelled"))

    jobs = api_jobs(api_run(bot, RUN_ID))
    assert (jobs[70001]["status"], jobs[70001]["conclusion"], jobs[70001]["duration_s"]) == (
        "completed",
        "success",
        60.0,
    )
    # The running job got a runner, so only its own completed event reports how it ended.
    assert jobs[70002]["status"] == "in_progress"
    assert (jobs[70003]["status"], jobs[70003]["conclusion"]) == ("completed", "cancelled")
    assert jobs[70003]["queue_s"] is None
    assert jobs[70003]["duration_s"] is None
    assert stat_count(bot, "queue_time") == 1

    bot.send(
        "workflow_job", job_event(70002, "completed", name="e2e", conclusion="cancelled", ran_s=45)
    )
    jobs = api_jobs(api_run(bot, RUN_ID))
    assert (jobs[70002]["conclusion"], jobs[70002]["duration_s"]) == ("cancelled", 45.0)


def test_queued_job_after_run_completed_closed(bot: BotClient) -> None:
    bot.send("workflow_run", run_event("completed", conclusion="cancelled"))

    bot.send("workflow_job", job_event(70004, "queued", name="deploy"))

    job = api_jobs(api_run(bot, RUN_ID))[70004]
    assert (job["status"], job["conclusion"], job["queue_s"], job["duration_s"]) == (
        "completed",
        "cancelled",
        None,
        None,
    )


def test_cancelled_job_completed_event_after_close(bot: BotClient) -> None:
    bot.send("workflow_job", job_event(70003, "queued", name="deploy"))
    bot.send("workflow_run", run_event("completed", conclusion="cancelled"))
    cancelled = job_event(70003, "completed", name="deploy", conclusion="cancelled")
    cancelled["workflow_job"].update(runner_id=None, runner_name=None, steps=[])

    bot.send("workflow_job", cancelled)

    job = api_jobs(api_run(bot, RUN_ID))[70003]
    assert (job["status"], job["conclusion"], job["queue_s"], job["duration_s"]) == (
        "completed",
        "cancelled",
        None,
        None,
    )


def test_rerun_closes_only_its_attempt(bot: BotClient) -> None:
    bot.send("workflow_run", run_event("completed", conclusion="failure"))
    bot.send("workflow_job", job_event(70011, "queued", attempt=2))

    # A repeated completed event of attempt 1 must not close attempt 2's queued job.
    bot.send("workflow_run", run_event("completed", conclusion="failure"))

    run = api_run(bot, RUN_ID)
    assert [attempt["attempt"] for attempt in run["attempts"]] == [1, 2]
    assert run["attempts"][1]["jobs"][0]["status"] == "queued"


def test_matrix_job_names_stored_exactly(bot: BotClient) -> None:
    names = {
        70021: "test (3.11, ubuntu)",
        70022: "test (3.12, ubuntu)",
        70023: "test (3.11, windows-latest, --no-cache)",
        70024: "build / package (linux/arm64) [nightly]",
        70025: "deploy · eu-west-1 🚀",
    }

    for job_id, name in names.items():
        bot.send("workflow_job", job_event(job_id, "completed", name=name))

    jobs = api_jobs(api_run(bot, RUN_ID))
    assert {job_id: job["name"] for job_id, job in jobs.items()} == names
    assert {job_id: job["stage"] for job_id, job in jobs.items()} == {
        70021: "test",
        70022: "test",
        70023: "test",
        70024: "build",
        70025: "deploy",
    }
    assert stat_count(bot, "test_duration") == 3
    with bot.session() as session:
        tags = [
            metric.tags["job"]
            for metric in session.scalars(
                select(Metric).where(Metric.metric_type == "test_duration")
            )
        ]
    assert sorted(tags) == sorted(names[job_id] for job_id in (70021, 70022, 70023))


def test_run_events_out_of_order(bot: BotClient) -> None:
    bot.send("workflow_run", run_event("completed"))
    bot.send("workflow_run", run_event("in_progress"))
    bot.send("workflow_run", run_event("queued"))

    run = api_run(bot, RUN_ID)
    assert (run["status"], run["conclusion"], run["duration_s"]) == ("completed", "success", 360.0)
    assert run["attempts"][0]["completed_at"] == "2024-07-01T08:06:00Z"
    assert stat_count(bot, "build_time") == 1


def test_same_delivery_id_processed_once(bot: BotClient) -> None:
    payload = job_event(70001, "completed")

    first = bot.send("workflow_job", payload, delivery_id="repeated-delivery")
    second = bot.send("workflow_job", payload, delivery_id="repeated-delivery")

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json() == {"status": "duplicate", "delivery_id": "repeated-delivery"}
    with bot.session() as session:
        stored = session.scalars(select(Delivery)).all()
    assert [(delivery.delivery_id, delivery.status, delivery.attempts) for delivery in stored] == [
        ("repeated-delivery", "done", 1)
    ]
    assert stat_count(bot, "queue_time") == 1


def test_same_facts_new_delivery_not_counted_twice(bot: BotClient) -> None:
    job = job_event(70001, "completed", name="unit tests")
    run = run_event("completed")

    for round_number in (1, 2, 3):
        bot.send("workflow_job", copy.deepcopy(job), delivery_id=f"job-{round_number}")
        bot.send("workflow_run", copy.deepcopy(run), delivery_id=f"run-{round_number}")

    assert stat_count(bot, "build_time") == 1
    assert stat_count(bot, "queue_time") == 1
    assert stat_count(bot, "test_duration") == 1
    with bot.session() as session:
        assert count_rows(session, Job) == 1
        assert set(delivery_statuses(session).values()) == {"done"}
        assert len(delivery_statuses(session)) == 6
    assert api_run(bot, RUN_ID)["duration_s"] == 360.0


def test_late_release_event_keeps_deleted(
    bot: BotClient, webhook_examples: dict[str, list[dict[str, Any]]]
) -> None:
    by_action = {payload["action"]: payload for payload in webhook_examples["release"]}

    bot.send("release", by_action["published"])
    bot.send("release", by_action["deleted"])
    bot.send("release", by_action["published"])
    bot.send("release", by_action["edited"])

    with bot.session() as session:
        release = session.get(Release, by_action["deleted"]["release"]["id"])
        assert release is not None
        assert release.state == "deleted"
        assert release.tag_name == "0.0.1"


def test_late_deployment_status_keeps_final(
    bot: BotClient, webhook_examples: dict[str, list[dict[str, Any]]]
) -> None:
    success = next(
        payload
        for payload in webhook_examples["deployment_status"]
        if payload["deployment_status"]["state"] == "success"
    )
    in_progress = copy.deepcopy(success)
    in_progress["deployment_status"].update(state="in_progress", updated_at="2019-05-15T15:20:54Z")
    inactive = copy.deepcopy(success)
    inactive["deployment_status"].update(state="inactive", updated_at="2019-05-16T09:00:00Z")

    for payload in (success, in_progress, inactive):
        bot.send("deployment_status", payload)

    with bot.session() as session:
        deployment = session.get(Deployment, success["deployment"]["id"])
        assert deployment is not None
        assert deployment.state == "success"
        assert deployment.duration_s == 2.0
    assert stat_count(bot, "deployment_time") == 1
