"""Silences: `/release silence`, `silences` and `unsilence`, the Silence buttons, and expiry on a
frozen clock; silenced failures are recorded and counted, not posted."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.alerts import payloads
from tests.alerts.conftest import ALERT_CHANNEL, AlertDriver
from tests.slack.conftest import USER_ID, all_text
from tests.slack.fake_slack import TEAM_ID


def press(alerts: AlertDriver, action_id: str, value: str) -> dict[str, Any]:
    """Press a button of an alert message as Slack sends it; return the ephemeral reply."""
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "example-team"},
        "user": {"id": USER_ID, "team_id": TEAM_ID},
        "api_app_id": "A0APP00001",
        "container": {"type": "message", "channel_id": ALERT_CHANNEL, "is_ephemeral": False},
        "channel": {"id": ALERT_CHANNEL, "name": "ci-alerts"},
        "trigger_id": "0000.0000.trigger",
        "response_url": alerts.fake.response_url("action"),
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "actions",
                "value": value,
                "action_ts": "1717400000.000001",
            }
        ],
    }
    before = len(alerts.fake.responses)
    response = alerts.post(
        urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
    )
    assert response.status_code == 200, response.text
    assert alerts.fake.wait_for(lambda: len(alerts.fake.responses) > before), (
        f"no answer to {action_id}"
    )
    return alerts.fake.responses[before]


def test_silence_command_holds_back_and_expires(alerts: AlertDriver) -> None:
    alerts.subscribe()
    answer = alerts.ask("silence octo-org/widget 2h")
    assert "Silenced *octo-org/widget*, every workflow, every branch for 2h 0m" in all_text(answer)

    alerts.bot.send("workflow_run", payloads.run(32001))
    alerts.settle()
    assert alerts.fake.posts() == []
    [failure] = alerts.failures()
    assert failure.silence_id is not None
    assert alerts.incidents() == []

    listing = all_text(alerts.ask("silences"))
    assert "Silences (1 active)" in listing
    assert (
        "held back 1 failure, the last <https://github.com/octo-org/widget/actions/runs/32001|CI #1>"
        in listing
    )

    assert alerts.clock is not None
    alerts.clock.advance(hours=2)
    alerts.bot.send("workflow_run", payloads.run(32002, sha="e" * 40))
    alerts.settle()
    assert len(alerts.fake.posts()) == 1
    assert "expired" in all_text(alerts.ask("silences"))


def test_silence_scoped_to_workflow_and_branch(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.ask('silence octo-org/widget "CI" --branch main 1d')
    alerts.bot.send("workflow_run", payloads.run(32101))
    alerts.bot.send("workflow_run", payloads.run(32102, name="Nightly"))
    alerts.bot.send("workflow_run", payloads.run(32103, branch="develop"))
    alerts.settle()
    posts = alerts.fake.posts()
    assert len(posts) == 2
    assert any("Nightly failed" in all_text(post) for post in posts)
    assert any("develop" in all_text(post) for post in posts)


def test_unsilence_ends_silence(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.ask("silence octo-org/widget 1h")
    alerts.bot.send("workflow_run", payloads.run(32201))
    ended = all_text(alerts.ask("unsilence 1"))
    assert "Ended silence 1 of *octo-org/widget*" in ended
    assert "it held back 1 failure" in ended
    alerts.bot.send("workflow_run", payloads.run(32202, sha="e" * 40))
    alerts.settle()
    assert len(alerts.fake.posts()) == 1
    assert "already ended" in all_text(alerts.ask("unsilence 1"))
    assert "no silence 7 in this workspace" in all_text(alerts.ask("unsilence 7"))


def test_silence_rejects_bad_input(alerts: AlertDriver) -> None:
    alerts.subscribe()
    assert "invalid duration '2 hours'" in all_text(alerts.ask('silence octo-org/widget "2 hours"'))
    assert "invalid duration '90d': use from 1m to 30d" in all_text(
        alerts.ask("silence octo-org/widget 90d")
    )
    assert "give a repository" in all_text(alerts.ask("silence 2h"))
    assert "has no record of octo-org/unknown" in all_text(
        alerts.ask("silence octo-org/unknown 2h")
    )


def test_silence_button_mutes_thread_until_expiry(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(32301))
    alerts.settle()
    [incident] = alerts.incidents()

    answer = press(alerts, "alert_silence_1h", str(incident.id))
    assert answer["response_type"] == "ephemeral"
    assert "Silenced the alerts of *octo-org/widget* (CI) in this workspace for 1h 0m" in all_text(
        answer
    )
    alerts.settle()
    [note] = alerts.fake.replies()
    assert note["thread_ts"] == alerts.posts_stored()[0].ts
    assert f"<@{USER_ID}> silenced these alerts for 1h 0m" in all_text(note)

    alerts.bot.send("workflow_run", payloads.run(32302, sha="e" * 40))
    alerts.settle()
    assert len(alerts.fake.replies()) == 1
    assert alerts.incidents()[0].failure_count == 2

    assert alerts.clock is not None
    alerts.clock.advance(hours=1, seconds=1)
    alerts.bot.send("workflow_run", payloads.run(32303, sha="f" * 40))
    alerts.settle()
    replies = alerts.fake.replies()
    assert len(replies) == 2
    assert "failure 3 of this incident" in all_text(replies[1])
    assert len(alerts.fake.posts()) == 1


def test_silence_day_button_and_open_run_ack(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(32401))
    alerts.settle()
    [incident] = alerts.incidents()
    assert "in this workspace for 1d 0h" in all_text(
        press(alerts, "alert_silence_1d", str(incident.id))
    )
    body = urlencode(
        {
            "payload": json.dumps(
                {
                    "type": "block_actions",
                    "team": {"id": TEAM_ID},
                    "user": {"id": USER_ID},
                    "channel": {"id": ALERT_CHANNEL},
                    "response_url": alerts.fake.response_url("action"),
                    "actions": [
                        {
                            "type": "button",
                            "action_id": "alert_open_run",
                            "block_id": "actions",
                            "action_ts": "1",
                        }
                    ],
                }
            )
        }
    ).encode()
    assert alerts.post(body, "application/x-www-form-urlencoded").status_code == 200


def test_silence_button_of_unknown_incident(alerts: AlertDriver) -> None:
    alerts.subscribe()
    answer = press(alerts, "alert_silence_1h", "999")
    assert "incident 999 no longer exists" in all_text(answer)
