"""`/release` through the real app: signatures, acknowledgement, help, usage and argument errors."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.config import load_settings
from handlers.slack import stats
from tests.conftest import WEBHOOK_SECRET
from tests.slack import payloads
from tests.slack.conftest import SlackDriver, all_text


def wait_for_answers_sent(slack: SlackDriver) -> None:
    """Wait until the app has no command response left to send."""
    integration = slack.bot.app.state.slack
    deadline = time.monotonic() + 15
    while integration.tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not integration.tasks


def test_signed_command_acknowledged_empty(slack: SlackDriver) -> None:
    response = slack.command("help")
    assert response.status_code == 200
    assert response.text == ""


def test_help_lists_every_command(slack: SlackDriver) -> None:
    answer = slack.ask("help")
    text = all_text(answer)
    for name in ("status", "stats", "profile", "subscribe", "unsubscribe", "subscriptions"):
        assert f"/release {name}" in text
    assert answer["response_type"] == "ephemeral"


def test_empty_command_shows_help(slack: SlackDriver) -> None:
    assert "release-bot commands" in all_text(slack.ask(""))


def test_unknown_command_shows_usage(slack: SlackDriver) -> None:
    text = all_text(slack.ask("deploy now"))
    assert "unknown command 'deploy'" in text
    assert (
        "Usage: `/release help | status | stats | profile | subscribe | unsubscribe | subscriptions | silence | silences | unsilence | digest`"
        in text
    )


def test_wrong_signature_rejected(slack: SlackDriver) -> None:
    body = slack.command_body("help")
    response = slack.post(body, "application/x-www-form-urlencoded", secret="another-secret")
    assert response.status_code == 401
    assert slack.fake.responses == []


def test_replayed_old_request_rejected(slack: SlackDriver) -> None:
    body = slack.command_body("help")
    six_minutes_ago = str(int(time.time()) - 6 * 60)
    response = slack.post(body, "application/x-www-form-urlencoded", timestamp=six_minutes_ago)
    assert response.status_code == 401


def test_malformed_repository_named(slack: SlackDriver) -> None:
    text = all_text(slack.ask("status -octo/widget"))
    assert "invalid repository '-octo/widget': use OWNER/NAME" in text
    text = all_text(slack.ask("profile octo-org/ latest"))
    assert "invalid repository 'octo-org/': use OWNER/NAME" in text
    text = all_text(slack.ask("status octo-org/widget v1.0.0 extra"))
    assert "unexpected arguments 'extra'" in text


def test_unknown_metric_names_accepted_values(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    text = all_text(slack.ask("stats build_tme octo-org/widget"))
    assert "unknown metric 'build_tme'" in text
    assert "build_time, test_duration, publish_time, deployment_time, queue_time" in text


def test_unparsable_since_names_value(slack: SlackDriver) -> None:
    text = all_text(slack.ask("stats octo-org/widget --since yesterday"))
    assert "invalid --since: invalid time window 'yesterday'" in text
    assert "7d" in text


def test_unknown_option_named(slack: SlackDriver) -> None:
    text = all_text(slack.ask("stats octo-org/widget --color red"))
    assert "unknown option '--color'" in text
    assert "--workflow, --branch, --since, --days" in text


def test_unclosed_quote_reported(slack: SlackDriver) -> None:
    text = all_text(slack.ask('stats --workflow "CI'))
    assert "unclosed quote" in text


def test_slow_stats_acknowledged_then_answered_once(
    slack: SlackDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget")
    slack.bot.send("workflow_run", payloads.workflow_run(30018))
    released = threading.Event()
    finished_after_release: list[bool] = []
    real_load_stats = stats.load_stats

    def slow_load_stats(*args: Any, **kwargs: Any) -> Any:
        # The query finishes only once the test has its HTTP response, so a response that
        # waited for the query could never arrive first.
        finished_after_release.append(released.wait(timeout=20))
        return real_load_stats(*args, **kwargs)

    monkeypatch.setattr(stats, "load_stats", slow_load_stats)
    before = len(slack.fake.responses)

    response = slack.command("stats octo-org/widget --days 90")
    released.set()

    assert response.status_code == 200
    assert response.text == ""
    assert slack.fake.wait_for(lambda: len(slack.fake.responses) > before)
    wait_for_answers_sent(slack)
    answers = slack.fake.responses[before:]
    assert len(answers) == 1
    assert finished_after_release == [True]
    assert answers[0]["response_type"] == "ephemeral"
    assert "build_time · octo-org/widget" in all_text(answers[0])


def test_slack_off_answers_503(database_url: str) -> None:
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        github_webhook_secret=WEBHOOK_SECRET,
        scheduler_enabled=False,
    )
    with TestClient(create_app(settings)) as client:
        events = client.post(
            "/slack/events",
            content=b"command=%2Frelease",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        install = client.get("/slack/install")
        health = client.get("/healthz")
    assert events.status_code == 503
    assert "SLACK_SIGNING_SECRET" in events.json()["error"]
    assert install.status_code == 404
    assert "SLACK_CLIENT_ID" in install.json()["error"]
    assert health.status_code == 200


def test_install_route_404_in_single_workspace_mode(slack: SlackDriver) -> None:
    response = slack.bot.client.get("/slack/install")
    assert response.status_code == 404
    assert "SLACK_CLIENT_SECRET" in response.json()["error"]


def test_events_url_verification(slack: SlackDriver) -> None:
    body = json.dumps({"token": "unused", "challenge": "challenge-value", "type": "url_verification"}).encode()
    response = slack.post(body, "application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "challenge-value"}
