"""The App Home tab: a dashboard of the repositories followed in the workspace."""

from __future__ import annotations

import json

from tests.slack import payloads
from tests.slack.conftest import SlackDriver, texts


def home_opened(slack: SlackDriver, team_id: str = "T0TEAM0001") -> object:
    body = {
        "token": "unused-verification-token",
        "team_id": team_id,
        "api_app_id": "A0APP00001",
        "type": "event_callback",
        "event_id": "Ev0HOME0001",
        "event_time": 1717400000,
        "event": {
            "type": "app_home_opened",
            "user": "U0USER0001",
            "channel": "D0DIRECT01",
            "tab": "home",
            "event_ts": "1717400000.000100",
        },
    }
    return slack.post(json.dumps(body).encode(), "application/json")


def test_home_tab_lists_followed_repositories(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget", "gadget")
    slack.ask("subscribe octo-org/widget")
    slack.ask("subscribe octo-org/gadget #random")
    slack.bot.send("workflow_run", payloads.workflow_run(30900))

    response = home_opened(slack)

    assert response.status_code == 200
    assert slack.fake.wait_for(lambda: len(slack.fake.calls_of("views.publish")) == 1)
    call = slack.fake.calls_of("views.publish")[0]
    assert call.body["user_id"] == "U0USER0001"
    assert call.answer["ok"] is True
    text = "\n".join(texts({"blocks": call.body["view"]["blocks"]}))
    assert "2 repositories followed in this workspace" in text
    assert "octo-org/widget" in text
    assert "CI #100" in text


def test_home_tab_without_subscriptions(slack: SlackDriver) -> None:
    home_opened(slack)
    assert slack.fake.wait_for(lambda: len(slack.fake.calls_of("views.publish")) == 1)
    view = slack.fake.calls_of("views.publish")[0].body["view"]
    assert "follows no repositories yet" in str(view["blocks"])
