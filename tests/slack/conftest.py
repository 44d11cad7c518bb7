"""Fixtures for the Slack tests: a fake Slack Web API, settings pointing at it, and a client that
sends slash commands and button presses signed like Slack (v0 signatures)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.config import Settings, load_settings
from tests.conftest import WEBHOOK_SECRET, BotClient
from tests.slack import payloads
from tests.slack.fake_slack import BOT_TOKEN, TEAM_ID, FakeSlack

SIGNING_SECRET = "test-slack-signing-secret"
USER_ID = "U0USER0001"


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A fake Slack Web API on 127.0.0.1."""
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def settings(database_url: str, fake_slack: FakeSlack) -> Settings:
    """Settings of a single-workspace bot whose Slack Web API is the fake."""
    return load_settings(
        _env_file=None,
        database_url=database_url,
        github_webhook_secret=WEBHOOK_SECRET,
        worker_poll_seconds=0.05,
        scheduler_enabled=False,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url,
    )


def slack_signature(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """Return the X-Slack-Signature header Slack sends: v0= HMAC-SHA256 of `v0:timestamp:body`."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class SlackDriver:
    """Sends signed requests to /slack/events as Slack does, and waits for the responses."""

    bot: BotClient
    fake: FakeSlack

    def post(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: str | None = None,
        secret: str = SIGNING_SECRET,
    ) -> Any:
        timestamp = timestamp or str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": slack_signature(body, timestamp, secret),
        }
        return self.bot.client.post("/slack/events", content=body, headers=headers)

    def command_body(
        self, text: str, *, channel_id: str = "C0ALERTS01", team_id: str = TEAM_ID
    ) -> bytes:
        form = {
            "token": "unused-verification-token",
            "team_id": team_id,
            "team_domain": "example-team",
            "channel_id": channel_id,
            "channel_name": "ci-alerts",
            "user_id": USER_ID,
            "user_name": "dev-user",
            "command": "/release",
            "text": text,
            "api_app_id": "A0APP00001",
            "response_url": self.fake.response_url(),
            "trigger_id": "0000.0000.trigger",
        }
        return urlencode(form).encode()

    def command(self, text: str, **kwargs: Any) -> Any:
        """Send `/release TEXT` signed like Slack; return the HTTP response (the acknowledgement)."""
        return self.post(self.command_body(text, **kwargs), "application/x-www-form-urlencoded")

    def ask(self, text: str, **kwargs: Any) -> dict[str, Any]:
        """Send a command and return the one response posted to its response_url."""
        before = len(self.fake.responses)
        response = self.command(text, **kwargs)
        assert response.status_code == 200, response.text
        assert self.fake.wait_for(lambda: len(self.fake.responses) > before), (
            f"no answer to {text!r}"
        )
        return self.fake.responses[before]

    def press_share(self, value: str, *, channel_id: str = "C0ALERTS01") -> Any:
        """Press the "Post to channel" button of a response whose command text is `value`."""
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM_ID, "domain": "example-team"},
            "user": {"id": USER_ID, "team_id": TEAM_ID},
            "api_app_id": "A0APP00001",
            "token": "unused-verification-token",
            "container": {"type": "message", "is_ephemeral": True},
            "channel": {"id": channel_id, "name": "ci-alerts"},
            "trigger_id": "0000.0000.trigger",
            "response_url": self.fake.response_url("action"),
            "actions": [
                {
                    "type": "button",
                    "action_id": "post_to_channel",
                    "block_id": "share",
                    "value": value,
                    "action_ts": "1717400000.000001",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body, "application/x-www-form-urlencoded")

    def install_widget_repos(self, *names: str) -> None:
        """Deliver an `installation created` webhook: installation 424242 of octo-org with these repos."""
        self.bot.send("installation", payloads.installation_created(names or ("widget",)))


@pytest.fixture
def slack(bot: BotClient, fake_slack: FakeSlack) -> SlackDriver:
    """The running bot with a driver for signed Slack requests."""
    return SlackDriver(bot=bot, fake=fake_slack)


def wait_until(predicate: Any, timeout: float = 15.0) -> bool:
    """Poll `predicate` until it is true, for database state that no request signals. Return whether it became true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def texts(message: dict[str, Any]) -> list[str]:
    """Every mrkdwn and plain text string of a message's blocks, and its fallback text."""
    found = [str(message.get("text") or "")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.get("blocks") or [])
    return found


def all_text(message: dict[str, Any]) -> str:
    """All the text of a message joined by newlines, for `in` checks."""
    return "\n".join(texts(message))
