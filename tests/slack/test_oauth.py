"""Multi-workspace installs through OAuth, kept by slack_sdk's SQLAlchemy installation and state stores."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from bot.config import Settings, load_settings
from storage.models_slack import slack_bots, slack_oauth_states
from tests.conftest import WEBHOOK_SECRET
from tests.slack import payloads
from tests.slack.conftest import SIGNING_SECRET, SlackDriver, all_text
from tests.slack.fake_slack import FakeSlack


@pytest.fixture
def settings(database_url: str, fake_slack: FakeSlack) -> Settings:
    """Settings of a multi-workspace bot: OAuth credentials and no bot token."""
    return load_settings(
        _env_file=None,
        database_url=database_url,
        github_webhook_secret=WEBHOOK_SECRET,
        worker_poll_seconds=0.05,
        scheduler_enabled=False,
        slack_signing_secret=SIGNING_SECRET,
        slack_client_id="1111.2222",
        slack_client_secret="test-client-secret-value",
        slack_api_url=fake_slack.api_url,
        public_url="https://bot.example.com",
    )


def authorize_query(page: str) -> dict[str, list[str]]:
    """Return the query of the "Add to Slack" link on the install page."""
    authorize = re.search(r'href="(https://slack\.com/oauth/v2/authorize[^"]+)"', page)
    assert authorize is not None, page
    return parse_qs(urlsplit(authorize.group(1).replace("&amp;", "&")).query)


def test_oauth_install_stores_bot_and_answers_team(slack: SlackDriver, settings: Settings) -> None:
    install = slack.bot.client.get("/slack/install", follow_redirects=False)
    assert install.status_code == 200
    query = authorize_query(install.text)
    assert query["client_id"] == ["1111.2222"]
    assert query["redirect_uri"] == ["https://bot.example.com/slack/oauth_redirect"]
    assert set(query["scope"][0].split(",")) == {
        "commands",
        "chat:write",
        "chat:write.public",
        "channels:read",
        "groups:read",
        "users:read",
        "users:read.email",
    }
    state = query["state"][0]
    with slack.bot.session() as session:
        assert session.execute(select(slack_oauth_states.c.state)).scalars().all() == [state]

    cookies = {"slack-app-oauth-state": state}
    slack.bot.client.cookies.update(cookies)
    redirect = slack.bot.client.get("/slack/oauth_redirect", params={"code": "abc", "state": state})
    assert redirect.status_code == 200
    with slack.bot.session() as session:
        bots = session.execute(select(slack_bots.c.team_id, slack_bots.c.bot_token)).all()
    assert [tuple(row) for row in bots] == [("T0TEAM0002", "xoxb-installed-abc")]

    answer = slack.ask("help", team_id="T0TEAM0002")
    assert "release-bot commands" in all_text(answer)


def test_live_status_uses_installed_token(slack: SlackDriver) -> None:
    install = slack.bot.client.get("/slack/install")
    query = authorize_query(install.text)
    state = query["state"][0]
    slack.bot.client.cookies.update({"slack-app-oauth-state": state})
    assert (
        slack.bot.client.get(
            "/slack/oauth_redirect", params={"code": "xyz", "state": state}
        ).status_code
        == 200
    )
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget", team_id="T0TEAM0002")

    slack.bot.send(
        "workflow_run",
        payloads.workflow_run(
            31500, action="requested", status="queued", conclusion=None, name="Publish"
        ),
    )

    assert slack.fake.wait_for(lambda: len(slack.fake.calls_of("chat.postMessage")) == 1)
    assert slack.fake.calls_of("chat.postMessage")[0].token == "xoxb-installed-xyz"
