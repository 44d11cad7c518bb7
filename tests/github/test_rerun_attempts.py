"""Re-runs: each attempt of a run is timed from its own `run_started_at`, and its jobs stay
with the attempt they ran in."""

from __future__ import annotations

from tests.conftest import BotClient
from tests.github.conftest import api_run, load_fixture, send_steps, stat_count

# Indexes of the steps in rerun_attempts.json.
RUN_ATTEMPT_1, RUN_ATTEMPT_2 = 2, 4


def check_attempts(bot: BotClient) -> None:
    run = api_run(bot, 30004)
    assert [attempt["attempt"] for attempt in run["attempts"]] == [1, 2]
    first, second = run["attempts"]

    assert first["conclusion"] == "failure"
    assert first["started_at"] == "2024-06-03T11:00:00Z"
    assert first["completed_at"] == "2024-06-03T11:04:00Z"
    assert first["duration_s"] == 240.0
    assert second["conclusion"] == "success"
    assert second["started_at"] == "2024-06-03T11:30:00Z"
    assert second["completed_at"] == "2024-06-03T11:35:12Z"
    assert second["duration_s"] == 312.0
    assert second["duration_s"] not in (2112.0, 2102.0)

    assert run["status"] == "completed"
    assert run["conclusion"] == "success"
    assert run["duration_s"] == 312.0
    assert run["created_at"] == "2024-06-03T11:00:00Z"

    assert {job["job_id"]: job["duration_s"] for job in first["jobs"]} == {
        50041: 60.0,
        50042: 220.0,
    }
    assert [(job["job_id"], job["name"], job["duration_s"]) for job in second["jobs"]] == [
        (50043, "test", 290.0)
    ]


def test_rerun_attempt_durations(bot: BotClient) -> None:
    steps = load_fixture("rerun_attempts.json")

    responses = send_steps(bot, steps)

    assert [response.status_code for response in responses] == [202] * 5
    check_attempts(bot)
    stats = bot.client.get(
        "/api/v1/stats", params={"metric": "build_time", "repo": "octo-org/widget"}
    ).json()
    assert stats["count"] == 2
    assert stats["min"] == 240.0
    assert stats["max"] == 312.0
    # Three jobs ran, each once: 50041 and 50042 in attempt 1, 50043 in attempt 2.
    assert stat_count(bot, "queue_time") == 3


def test_rerun_attempts_in_reverse(bot: BotClient) -> None:
    steps = load_fixture("rerun_attempts.json")

    send_steps(bot, reversed(steps))

    check_attempts(bot)
    assert stat_count(bot, "build_time") == 2


def test_rerun_in_progress_after_first_attempt(bot: BotClient) -> None:
    steps = load_fixture("rerun_attempts.json")
    send_steps(bot, steps[: RUN_ATTEMPT_1 + 1])
    in_progress = steps[RUN_ATTEMPT_2]
    run_payload = in_progress["payload"]["workflow_run"]
    run_payload.update(status="in_progress", conclusion=None, updated_at="2024-06-03T11:30:05Z")
    in_progress["payload"]["action"] = "in_progress"

    bot.send("workflow_run", in_progress["payload"])

    run = api_run(bot, 30004)
    first, second = run["attempts"]
    assert first["status"] == "completed"
    assert first["duration_s"] == 240.0
    assert second["status"] == "in_progress"
    assert second["duration_s"] is None
    assert run["status"] == "in_progress"
    assert stat_count(bot, "build_time") == 1
