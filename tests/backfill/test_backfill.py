"""`release-bot backfill`: past runs and jobs read from GitHub's REST API are recorded through the
webhook handlers, once each, across pages, attempts, interruptions and rate limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from storage.models import Job
from tests.backfill.conftest import FakeClock
from tests.backfill.fake_actions import REPO, REPOSITORY, FakeActions, rest_job, rest_run
from tests.conftest import BotClient

INSTALLATION_ID = 77
JOBS_OF_4000 = f"/repos/{REPO}/actions/runs/4000/attempts/1/jobs"


def plan_history(fake: FakeActions) -> datetime:
    """Give the fake four runs on two pages; run 4003 has two attempts and three jobs in its second."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    fake.installations[REPO] = INSTALLATION_ID
    first = rest_run(4003, attempt=1, created=base, started=base, seconds=300, conclusion="failure")
    rerun = rest_run(4003, attempt=2, created=base, started=base + timedelta(hours=1), seconds=120)
    fake.runs = [
        rerun,
        rest_run(4002, attempt=1, created=base - timedelta(hours=2), started=base - timedelta(hours=2), seconds=200),
        rest_run(4001, attempt=1, created=base - timedelta(hours=3), started=base - timedelta(hours=3), seconds=150),
        rest_run(4000, attempt=1, created=base - timedelta(hours=4), started=base - timedelta(hours=4), seconds=90),
        # Outside --since 30d: the created filter leaves it out.
        rest_run(3000, attempt=1, created=base - timedelta(days=40), started=base - timedelta(days=40), seconds=60),
    ]
    fake.attempts[(4003, 1)] = first
    fake.jobs[(4003, 1)] = [rest_job(40031, 4003, 1, created=base, queued=10, seconds=250)]
    fake.jobs[(4003, 2)] = [
        rest_job(job_id, 4003, 2, created=base + timedelta(hours=1), queued=5, seconds=100)
        for job_id in (40032, 40033, 40034)
    ]
    for run in fake.runs[1:4]:
        created = datetime.fromisoformat(run["created_at"])
        fake.jobs[(run["id"], 1)] = [rest_job(run["id"] * 10 + 1, run["id"], 1, created=created, queued=20, seconds=60)]
    return base


def stats_count(bot: BotClient, metric: str) -> int:
    response = bot.client.get("/api/v1/stats", params={"metric": metric, "repo": REPO})
    assert response.status_code == 200, response.text
    return response.json()["count"]


def stored_runs(bot: BotClient) -> dict[int, dict[str, Any]]:
    response = bot.client.get("/api/v1/runs", params={"repo": REPO})
    assert response.status_code == 200, response.text
    return {run["run_id"]: run for run in response.json()["runs"]}


def test_backfill_interrupted_then_resumed(
    bot: BotClient, fake_actions: FakeActions, clock: FakeClock, run_backfill: Callable[..., Any]
) -> None:
    plan_history(fake_actions)
    fake_actions.broken_paths.add(JOBS_OF_4000)

    first = run_backfill(REPO, "--since", "30d")

    assert first.exit_code == 1, first.output
    assert "backfill of octo-org/widget stopped" in first.output
    assert "run the same command again to resume" in first.output
    assert clock.sleeps == [2.0, 4.0, 8.0]
    assert set(stored_runs(bot)) == {4003, 4002, 4001}

    fake_actions.broken_paths.clear()
    second = run_backfill(REPO, "--since", "30d")

    assert second.exit_code == 0, second.output
    assert "resumed at page 2" in second.output
    runs_params = [httpx.URL(path).params for path in fake_actions.paths("runs")]
    assert [params["page"] for params in runs_params] == ["1", "2", "2"]
    assert {params["per_page"] for params in runs_params} == {"100"}
    assert all(params["created"].startswith(">=") for params in runs_params)
    jobs_paths = fake_actions.paths("attempt_jobs")
    assert sum("/runs/4001/" in path for path in jobs_paths) == 1
    assert sum("/runs/4002/" in path for path in jobs_paths) == 1
    assert sum("/runs/4003/attempts/2/" in path for path in jobs_paths) == 2
    assert fake_actions.count("attempt") == 1

    runs = stored_runs(bot)
    assert set(runs) == {4003, 4002, 4001, 4000}
    assert [attempt["duration_s"] for attempt in runs[4003]["attempts"]] == [300.0, 120.0]
    assert [attempt["conclusion"] for attempt in runs[4003]["attempts"]] == ["failure", "success"]
    assert stats_count(bot, "build_time") == 5
    assert stats_count(bot, "queue_time") == 7
    with bot.session() as session:
        assert len(session.exec(select(Job)).all()) == 7


def test_backfill_again_fetches_no_finished_run(
    bot: BotClient, fake_actions: FakeActions, run_backfill: Callable[..., Any]
) -> None:
    plan_history(fake_actions)
    assert run_backfill(REPO).exit_code == 0
    jobs_requests = fake_actions.count("attempt_jobs")

    again = run_backfill(REPO)

    assert again.exit_code == 0, again.output
    assert "0 runs recorded (0 jobs), 4 already recorded" in again.output
    assert fake_actions.count("attempt_jobs") == jobs_requests
    assert fake_actions.count("attempt") == 1
    assert stats_count(bot, "build_time") == 5


def test_backfill_restart_counts_once(
    bot: BotClient, fake_actions: FakeActions, run_backfill: Callable[..., Any]
) -> None:
    plan_history(fake_actions)
    assert run_backfill(REPO).exit_code == 0
    jobs_requests = fake_actions.count("attempt_jobs")

    restarted = run_backfill(REPO, "--restart")

    assert restarted.exit_code == 0, restarted.output
    assert "4 runs recorded (7 jobs)" in restarted.output
    assert fake_actions.count("attempt_jobs") == 2 * jobs_requests
    assert stats_count(bot, "build_time") == 5
    assert stats_count(bot, "queue_time") == 7


def test_backfill_merges_webhook_run(
    bot: BotClient, fake_actions: FakeActions, run_backfill: Callable[..., Any]
) -> None:
    plan_history(fake_actions)
    webhook_run = next(run for run in fake_actions.runs if run["id"] == 4001)
    installation = {"id": INSTALLATION_ID}
    bot.send(
        "workflow_run",
        {"action": "completed", "workflow_run": webhook_run, "repository": REPOSITORY, "installation": installation},
    )
    bot.send(
        "workflow_job",
        {"action": "completed", "workflow_job": fake_actions.jobs[(4001, 1)][0], "repository": REPOSITORY,
         "installation": installation},
    )
    assert stats_count(bot, "build_time") == 1

    result = run_backfill(REPO)

    assert result.exit_code == 0, result.output
    # The installation came from the repository stored from webhooks, not from GitHub.
    assert fake_actions.count("repo_installation") == 0
    runs = stored_runs(bot)
    assert len(runs) == 4
    assert len(runs[4001]["attempts"]) == 1
    assert runs[4001]["duration_s"] == 150.0
    assert stats_count(bot, "build_time") == 5
    assert stats_count(bot, "queue_time") == 7


def test_backfill_waits_for_rate_limit(
    bot: BotClient, fake_actions: FakeActions, clock: FakeClock, run_backfill: Callable[..., Any]
) -> None:
    plan_history(fake_actions)
    clock.now = time.time()
    reset = int(time.time()) + 120
    fake_actions.plan(
        "runs",
        httpx.Response(429, headers={"retry-after": "30"}, json={"message": "You have exceeded a secondary rate limit."}),
        httpx.Response(
            403,
            headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            json={"message": "API rate limit exceeded for installation."},
        ),
    )

    result = run_backfill(REPO)

    assert result.exit_code == 0, result.output
    assert clock.sleeps[0] == 30.0
    assert 60.0 <= clock.sleeps[1] <= 120.0
    assert set(stored_runs(bot)) == {4003, 4002, 4001, 4000}


def test_backfill_slows_down_on_low_budget(
    bot: BotClient, fake_actions: FakeActions, clock: FakeClock, run_backfill: Callable[..., Any]
) -> None:
    plan_history(fake_actions)
    fake_actions.rate_headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "400",
        "x-ratelimit-reset": str(int(clock.now) + 800),
    }

    result = run_backfill(REPO)

    assert result.exit_code == 0, result.output
    assert clock.sleeps
    assert all(0.0 < seconds <= 2.0 for seconds in clock.sleeps)


def test_backfill_app_not_installed(fake_actions: FakeActions, run_backfill: Callable[..., Any]) -> None:
    result = run_backfill(REPO)

    assert result.exit_code == 1
    assert "is not installed on octo-org/widget" in result.output
    assert "install the App on the repository" in result.output
    assert fake_actions.count("runs") == 0


def test_backfill_without_credentials(
    fake_actions: FakeActions, run_backfill: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_APP_ID")

    result = run_backfill(REPO)

    assert result.exit_code == 2
    assert "GITHUB_APP_ID and GITHUB_PRIVATE_KEY" in result.output
    assert fake_actions.calls == []


def test_backfill_invalid_repository(run_backfill: Callable[..., Any]) -> None:
    result = run_backfill("widget")

    assert result.exit_code == 2
    assert "invalid repository 'widget'" in result.output


def test_backfill_invalid_job_skips_run(
    bot: BotClient, fake_actions: FakeActions, run_backfill: Callable[..., Any]
) -> None:
    plan_history(fake_actions)
    del fake_actions.jobs[(4002, 1)][0]["run_id"]

    result = run_backfill(REPO)

    assert result.exit_code == 1, result.output
    assert "1 invalid (run ids 4002)" in result.output
    assert set(stored_runs(bot)) == {4003, 4001, 4000}


def test_backfill_missing_permission(fake_actions: FakeActions, run_backfill: Callable[..., Any]) -> None:
    plan_history(fake_actions)
    fake_actions.plan(
        "runs",
        httpx.Response(
            403,
            headers={"x-accepted-github-permissions": "actions=read"},
            json={"message": "Resource not accessible by integration"},
        ),
    )

    result = run_backfill(REPO)

    assert result.exit_code == 1
    assert "give the GitHub App the permission actions=read on octo-org/widget" in result.output
    assert fake_actions.count("attempt_jobs") == 0


def test_backfill_warns_over_listing_limit(fake_actions: FakeActions, run_backfill: Callable[..., Any]) -> None:
    plan_history(fake_actions)
    listed = fake_actions.serve_runs

    def serve_many(request: httpx.Request, match: Any) -> httpx.Response:
        response = listed(request, match)
        body = response.json()
        return httpx.Response(200, json={**body, "total_count": 1500}, headers=response.headers)

    fake_actions.serve_runs = serve_many  # type: ignore[method-assign]

    result = run_backfill(REPO)

    assert result.exit_code == 0, result.output
    assert "GitHub lists at most 1000 of the 1500 runs" in result.output
    assert "runs created before" in result.output
