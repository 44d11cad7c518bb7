"""End-to-end smoke test: a signed workflow_run delivery becomes a run in the JSON API."""

from tests.conftest import BotClient


def test_completed_run_visible_in_api(bot: BotClient) -> None:
    payload = {
        "action": "completed",
        "workflow_run": {
            "id": 1,
            "name": "CI",
            "run_attempt": 1,
            "status": "completed",
            "conclusion": "success",
            "head_branch": "main",
            "run_started_at": "2024-06-03T09:00:00Z",
            "updated_at": "2024-06-03T09:05:12Z",
        },
        "repository": {"id": 5, "full_name": "Octo/Widget"},
        "installation": {"id": 9},
    }
    response = bot.send("workflow_run", payload)
    assert response.status_code == 202

    run = bot.client.get("/api/v1/runs/1").json()
    assert run["repo"] == "octo/widget"
    assert run["attempts"][0]["duration_s"] == 312.0

    stats = bot.client.get("/api/v1/stats", params={"metric": "build_time", "repo": "octo/widget"}).json()
    assert stats["count"] == 1
    assert stats["p50"] == 312.0


def test_invalid_query_is_422_without_echo(bot: BotClient) -> None:
    response = bot.client.get("/api/v1/runs", params={"limit": "NaN"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]
    assert "NaN" not in response.text
