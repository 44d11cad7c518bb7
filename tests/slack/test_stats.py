"""`/release stats`: statistics, runs and re-runs, attempt and job outcomes, flaky failures, change
against the previous window."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from storage.models import Job, Step
from tests.slack import payloads
from tests.slack.conftest import SlackDriver, all_text


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def send_run(
    slack: SlackDriver,
    run_id: int,
    *,
    days_ago: float,
    seconds: int,
    conclusion: str = "success",
    attempt: int = 1,
    branch: str = "main",
) -> None:
    start = datetime.now(UTC) - timedelta(days=days_ago)
    slack.bot.send(
        "workflow_run",
        payloads.workflow_run(
            run_id,
            attempt=attempt,
            conclusion=conclusion,
            branch=branch,
            started=iso(start),
            updated=iso(start + timedelta(seconds=seconds)),
        ),
    )


def linked(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget")


def test_stats_counts_runs_and_reruns(slack: SlackDriver) -> None:
    linked(slack)
    send_run(slack, 31001, days_ago=3, seconds=300)
    send_run(slack, 31002, days_ago=2, seconds=100, conclusion="failure")
    send_run(slack, 31002, days_ago=1, seconds=200, attempt=2)
    send_run(slack, 31003, days_ago=1, seconds=400, conclusion="cancelled")
    send_run(slack, 31004, days_ago=45, seconds=100)

    answer = slack.ask("stats build_time octo-org/widget --since 30d")
    text = all_text(answer)

    assert "*Count*\n4" in text
    assert "*Mean*\n4m 10s" in text
    assert "*p50*\n4m 10s" in text
    assert "*Min*\n1m 40s" in text
    assert "*Max*\n6m 40s" in text
    assert "*Runs*\n3 runs, 1 re-run" in text
    assert "*Attempt outcomes*\nsuccess 2 · failure 1 · skipped 0 · cancelled 1" in text
    assert "*Latest outcome per run*\nsuccess 2 · failure 0 · skipped 0 · cancelled 1" in text
    assert "*Failure rate*\n33.3%" in text
    assert "*Flaky failures*\n1" in text
    assert "mean +2m 30s (+150.0%), count +3 (1 before)" in text
    assert "*Trend* (mean per 1d 12h)\n`                  ▁█`" in text


def test_stats_filters_branch(slack: SlackDriver) -> None:
    linked(slack)
    send_run(slack, 31101, days_ago=1, seconds=60, branch="main")
    send_run(slack, 31102, days_ago=1, seconds=600, branch="feature")
    text = all_text(slack.ask("stats octo-org/widget --branch feature"))
    assert "*Count*\n1" in text
    assert "*Mean*\n10m 0s" in text
    assert "branch feature" in text


def test_stats_days_option(slack: SlackDriver) -> None:
    linked(slack)
    send_run(slack, 31201, days_ago=60, seconds=60)
    assert "*Count*\n1" in all_text(slack.ask("stats widget --days 90"))
    assert "No `build_time` points in this window." in all_text(slack.ask("stats widget --days 30"))
    assert "invalid --days 'x'" in all_text(slack.ask("stats widget --days x"))


def test_stats_sparkline_trend(slack: SlackDriver) -> None:
    linked(slack)
    send_run(slack, 31301, days_ago=9.9, seconds=60)
    send_run(slack, 31302, days_ago=0.2, seconds=600)
    answer = slack.ask("stats octo-org/widget --since 10d")
    trend = next(
        block["text"]["text"]
        for block in answer["blocks"]
        if block["type"] == "section"
        and "text" in block
        and block["text"]["text"].startswith("*Trend*")
    )
    line = trend.split("`")[1]
    assert len(line) == 20
    assert line[0] == "▁"
    assert line[-1] == "█"
    assert line[1:-1].strip() == ""


def test_stats_without_repo_uses_channel_repo(slack: SlackDriver) -> None:
    linked(slack)
    send_run(slack, 31401, days_ago=1, seconds=60)
    assert "build_time · octo-org/widget" in all_text(slack.ask("stats"))


def test_stats_unlinked_repository_refused(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    text = all_text(slack.ask("stats octo-org/widget"))
    assert "not linked to this Slack workspace" in text


def test_stats_job_outcomes_never_negative(slack: SlackDriver) -> None:
    linked(slack)
    start = datetime.now(UTC) - timedelta(days=1)
    send_run(slack, 31501, days_ago=1, seconds=312)
    slack.bot.send(
        "workflow_job",
        payloads.workflow_job(
            51501,
            31501,
            name="build",
            created=iso(start),
            started=iso(start),
            completed=iso(start + timedelta(seconds=312)),
        ),
    )
    # GitHub sends skipped jobs with completed_at a second before started_at.
    slack.bot.send(
        "workflow_job",
        payloads.workflow_job(
            51502,
            31501,
            name="lint",
            conclusion="skipped",
            created=iso(start),
            started=iso(start + timedelta(seconds=10)),
            completed=iso(start + timedelta(seconds=9)),
        ),
    )
    slack.bot.send(
        "workflow_job",
        payloads.workflow_job(
            51503,
            31501,
            name="deploy",
            conclusion="cancelled",
            created=iso(start),
            started=iso(start + timedelta(seconds=1900)),
            completed=iso(start + timedelta(seconds=100)),
            steps=[
                {
                    "name": "Deploy",
                    "status": "completed",
                    "conclusion": "cancelled",
                    "number": 1,
                    "started_at": None,
                    "completed_at": None,
                }
            ],
        ),
    )

    stats = all_text(slack.ask("stats octo-org/widget"))
    profile = all_text(slack.ask("profile octo-org/widget 31501"))

    assert "*Job outcomes*\nsuccess 1 · failure 0 · skipped 1 · cancelled 1" in stats
    assert "*Min*\n5m 12s" in stats
    assert "*Max*\n5m 12s" in stats
    for text in (stats, profile):
        assert not re.search(r"(?<!\d)-\d", text), text
    with slack.bot.session() as session:
        durations = {job.name: job.duration_s for job in session.exec(select(Job)).all()}
        step_durations = [step.duration_s for step in session.exec(select(Step)).all()]
    assert durations == {"build": 312.0, "lint": 0.0, "deploy": 0.0}
    assert step_durations == [None]


def test_stats_rerun_latest_outcome_and_flaky(slack: SlackDriver) -> None:
    linked(slack)
    send_run(slack, 31601, days_ago=1, seconds=240, conclusion="failure")
    send_run(slack, 31601, days_ago=0.9, seconds=312, attempt=2)

    text = all_text(slack.ask("stats octo-org/widget"))

    assert "*Runs*\n1 run, 1 re-run" in text
    assert "*Attempt outcomes*\nsuccess 1 · failure 1 · skipped 0 · cancelled 0" in text
    assert "*Latest outcome per run*\nsuccess 1 · failure 0 · skipped 0 · cancelled 0" in text
    assert "*Flaky failures*\n1" in text
    assert "*Count*\n2" in text
    assert "*Failure rate*\n50.0%" in text


def test_stats_failure_without_pass_not_flaky(slack: SlackDriver) -> None:
    linked(slack)
    send_run(slack, 31701, days_ago=1, seconds=240, conclusion="failure")

    text = all_text(slack.ask("stats octo-org/widget"))

    assert "*Flaky failures*\n0" in text
    assert "*Latest outcome per run*\nsuccess 0 · failure 1 · skipped 0 · cancelled 0" in text
