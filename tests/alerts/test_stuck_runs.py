"""Stuck runs: one alert per stuck run attempt, resolved when the run completes. Leftover jobs of
completed attempts are closed without an alert. The limit comes from the workflow's p95 build time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from bot.config import Settings
from bot.scheduler import Scheduler
from handlers.github.reactions.stuck_runs import check_stuck_runs, stuck_job
from storage import locks
from storage.models import Job
from tests.alerts import payloads
from tests.alerts.conftest import AlertDriver
from tests.slack import payloads as slack_payloads
from tests.slack.conftest import all_text

NINE = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


def in_progress_run(
    run_id: int, *, name: str = "CI", started: str = "2024-06-03T06:00:00Z"
) -> dict[str, Any]:
    """A workflow_run delivery of a run that is still in progress."""
    payload = payloads.run(run_id, name=name, started=started, updated=started)
    payload["action"] = "in_progress"
    payload["workflow_run"]["status"] = "in_progress"
    payload["workflow_run"]["conclusion"] = None
    return payload


def settings_of(alerts: AlertDriver) -> Settings:
    """The settings the running bot was started with."""
    return alerts.bot.app.state.settings


def start(alerts: AlertDriver, at: datetime = NINE) -> None:
    """Subscribe the alert channel to failures and set the test clock."""
    assert alerts.clock is not None
    alerts.clock.current = at
    alerts.subscribe()


def test_stuck_run_alerts_once_then_resolves(alerts: AlertDriver) -> None:
    start(alerts)
    alerts.bot.send("workflow_run", in_progress_run(40001))

    first = check_stuck_runs(alerts.engine, settings_of(alerts), now=NINE)
    alerts.settle()
    second = check_stuck_runs(alerts.engine, settings_of(alerts), now=NINE + timedelta(minutes=5))
    alerts.settle()

    assert first == {"closed_jobs": 0, "alerted": 1, "resolved": 0}
    assert second == {"closed_jobs": 0, "alerted": 0, "resolved": 0}
    posts = alerts.fake.posts()
    assert len(posts) == 1
    text = all_text(posts[0])
    assert "CI is stuck in octo-org/widget" in text
    assert "Queued or in progress for 3h 0m, longer than the limit of 30m 0s" in text
    assert "No job of the run has started yet" in text
    assert alerts.fake.replies() == []
    [incident] = alerts.incidents()
    assert incident.kind == "stuck"
    assert incident.status == "open"
    assert incident.failure_count == 1
    assert incident.incident_key == '["stuck","octo-org/widget","CI","main"]'
    assert [failure.source_key for failure in alerts.failures()] == ["stuck:run:40001:1"]

    alerts.clock.current = NINE + timedelta(minutes=10)  # type: ignore[union-attr]
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            40001,
            conclusion="success",
            started="2024-06-03T06:00:00Z",
            updated="2024-06-03T09:10:00Z",
        ),
    )
    alerts.settle()

    [incident] = alerts.incidents()
    assert incident.status == "resolved"
    assert incident.resolved_run_id == 40001
    assert incident.recovery_s == 600.0
    updates = alerts.fake.updates()
    assert len(updates) == 1
    assert "Resolved: CI is stuck in octo-org/widget" in all_text(updates[0])
    replies = alerts.fake.replies()
    assert len(replies) == 1
    assert "the stuck runs finished by 2024-06-03 09:10 UTC, 10m 0s after the alert" in all_text(
        replies[0]
    )
    third = check_stuck_runs(alerts.engine, settings_of(alerts), now=NINE + timedelta(minutes=15))
    assert third == {"closed_jobs": 0, "alerted": 0, "resolved": 0}


def test_stuck_run_under_floor_not_alerted(alerts: AlertDriver) -> None:
    start(alerts)
    alerts.bot.send("workflow_run", in_progress_run(40011, started="2024-06-03T08:31:00Z"))

    counts = check_stuck_runs(alerts.engine, settings_of(alerts), now=NINE)

    assert counts["alerted"] == 0
    assert alerts.incidents() == []


def test_stuck_run_lists_unfinished_jobs(alerts: AlertDriver) -> None:
    start(alerts)
    alerts.bot.send("workflow_run", in_progress_run(40021))
    alerts.bot.send(
        "workflow_job",
        slack_payloads.workflow_job(
            50021,
            40021,
            name="build <!channel>",
            action="in_progress",
            status="in_progress",
            conclusion=None,
            created="2024-06-03T06:00:05Z",
            started="2024-06-03T06:00:10Z",
            completed=None,
        ),
    )

    check_stuck_runs(alerts.engine, settings_of(alerts), now=NINE)
    alerts.settle()

    [post] = alerts.fake.posts()
    text = all_text(post)
    assert ":hourglass_flowing_sand:" in text
    assert "build &lt;!channel&gt;" in text
    assert "in progress" in text
    assert "<!channel>" not in text


def test_leftover_job_closed_without_alert(alerts: AlertDriver) -> None:
    start(alerts)
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            40031,
            conclusion="success",
            started="2024-06-03T06:00:00Z",
            updated="2024-06-03T06:20:00Z",
        ),
    )
    # Both webhook paths close such jobs as they arrive. A leftover comes from data stored
    # before that, so the test writes it directly.
    with Session(alerts.engine) as session:
        session.add(
            Job(
                id=50031,
                run_id=40031,
                run_attempt=1,
                repo="octo-org/widget",
                workflow_name="CI",
                head_branch="main",
                name="deploy",
                status="queued",
                created_at=datetime(2024, 6, 3, 6, 0, tzinfo=UTC),
            )
        )
        session.commit()

    counts = check_stuck_runs(alerts.engine, settings_of(alerts), now=NINE)
    again = check_stuck_runs(alerts.engine, settings_of(alerts), now=NINE + timedelta(minutes=5))
    alerts.settle()

    assert counts == {"closed_jobs": 1, "alerted": 0, "resolved": 0}
    assert again["closed_jobs"] == 0
    with Session(alerts.engine) as session:
        job = session.scalars(select(Job).where(Job.id == 50031)).one()
    assert job.status == "completed"
    assert job.conclusion == "skipped"
    assert alerts.incidents() == []
    assert alerts.fake.posts() == []


def test_stuck_limit_twice_p95(alerts: AlertDriver) -> None:
    start(alerts)
    # Three earlier Nightly runs of 2 h each: p95 2 h, so the limit is 4 h.
    for day, run_id in ((31, 40041), (1, 40042), (2, 40043)):
        month = 5 if day == 31 else 6
        alerts.bot.send(
            "workflow_run",
            payloads.run(
                run_id,
                name="Nightly",
                conclusion="success",
                started=f"2024-{month:02d}-{day:02d}T01:00:00Z",
                updated=f"2024-{month:02d}-{day:02d}T03:00:00Z",
            ),
        )
    alerts.bot.send("workflow_run", in_progress_run(40044, name="Nightly"))

    at_three_hours = check_stuck_runs(alerts.engine, settings_of(alerts), now=NINE)
    at_four_hours = check_stuck_runs(
        alerts.engine, settings_of(alerts), now=NINE + timedelta(hours=1)
    )
    after_four_hours = check_stuck_runs(
        alerts.engine, settings_of(alerts), now=NINE + timedelta(hours=1, minutes=1)
    )
    alerts.settle()

    assert at_three_hours["alerted"] == 0
    assert at_four_hours["alerted"] == 0
    assert after_four_hours["alerted"] == 1
    [post] = alerts.fake.posts()
    assert "Queued or in progress for 4h 1m, longer than the limit of 4h 0m" in all_text(post)


def test_stuck_check_skipped_while_locked(alerts: AlertDriver, settings: Settings) -> None:
    start(alerts)
    alerts.bot.send("workflow_run", in_progress_run(40051))
    scheduler = Scheduler(alerts.engine, settings, factories=[stuck_job])

    with locks.job_lock(alerts.engine, "job:stuck_runs") as held:
        assert held
        outcome = scheduler.run("stuck_runs")

    assert outcome == "skipped"
    assert alerts.incidents() == []


def test_stuck_job_interval_from_settings(settings: Settings) -> None:
    job = stuck_job(settings.model_copy(update={"stuck_check_minutes": 2.0}))

    assert job.id == "stuck_runs"
    assert job.interval_seconds == 120.0


def test_stuck_incident_waits_for_every_run(alerts: AlertDriver) -> None:
    start(alerts)
    alerts.bot.send("workflow_run", in_progress_run(40061))
    alerts.bot.send("workflow_run", in_progress_run(40062, started="2024-06-03T06:30:00Z"))

    counts = check_stuck_runs(alerts.engine, settings_of(alerts), now=NINE)
    alerts.settle()
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            40061,
            conclusion="success",
            started="2024-06-03T06:00:00Z",
            updated="2024-06-03T09:01:00Z",
        ),
    )
    after_first = alerts.incidents()
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            40062,
            conclusion="failure",
            started="2024-06-03T06:30:00Z",
            updated="2024-06-03T09:02:00Z",
        ),
    )
    alerts.settle()

    assert counts["alerted"] == 2
    assert len(alerts.fake.posts()) == 2  # the stuck root message, then the failure's own incident
    replies = [all_text(reply) for reply in alerts.fake.replies()]
    assert "Also stuck" in replies[0]
    assert "failure 2 of this incident" in replies[0]
    assert [incident.status for incident in after_first] == ["open"]
    stuck, failed = alerts.incidents()
    assert stuck.kind == "stuck"
    assert stuck.status == "resolved"
    assert stuck.resolved_run_id == 40062
    assert stuck.failure_count == 2
    assert failed.kind == "workflow_run"
    assert failed.status == "open"


def test_stuck_job_without_run_event(alerts: AlertDriver) -> None:
    start(alerts)
    alerts.bot.send(
        "workflow_job",
        slack_payloads.workflow_job(
            50071,
            40071,
            name="build",
            action="queued",
            status="queued",
            conclusion=None,
            created="2024-06-03T06:00:00Z",
            started=None,
            completed=None,
        ),
    )

    counts = check_stuck_runs(alerts.engine, settings_of(alerts), now=NINE)
    alerts.settle()
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            40071, conclusion="success", started="2024-06-03T06:00:00Z", updated="2024-06-03T09:03:00Z"
        ),
    )
    alerts.settle()

    assert counts["alerted"] == 1
    [post] = alerts.fake.posts()
    assert "CI is stuck in octo-org/widget" in all_text(post)
    assert "Queued or in progress for 3h 0m" in all_text(post)
    [incident] = alerts.incidents()
    assert incident.status == "resolved"
    assert incident.resolved_run_id == 40071
