"""Alert delivery loses nothing and repeats nothing: Retry-After on one channel, a process killed
between queueing and sending, an abandoned lease, a restart after Slack responded, and channels
Slack rejects for good."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from bot.app import create_app
from bot.config import Settings
from storage import outbox as outbox_store
from storage.db import session_scope
from storage.outbox import OutboxMessage
from tests.alerts import payloads
from tests.alerts.conftest import (
    ALERT_CHANNEL,
    ARCHIVED_CHANNEL,
    AlertDriver,
    AlertSlack,
    FakeClock,
)
from tests.conftest import WEBHOOK_SECRET, BotClient, sign
from tests.slack.conftest import SIGNING_SECRET, all_text, slack_signature
from tests.slack.fake_slack import BOT_TOKEN, TEAM_ID

REPO_ROOT = Path(__file__).resolve().parents[2]
OTHER_CHANNEL = "C0OTHER001"


def test_retry_after_waits_for_channel(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.ask(f"subscribe octo-org/widget <#{OTHER_CHANNEL}|random> --events failures")
    alerts.fake.plan_answer(
        "chat.postMessage",
        429,
        {"ok": False, "error": "ratelimited"},
        {"Retry-After": "30"},
        channel=ALERT_CHANNEL,
    )
    alerts.fake.plan_answer(
        "chat.postMessage",
        200,
        {"ok": True, "channel": ALERT_CHANNEL, "ts": "1717400000.000100"},
        channel=ALERT_CHANNEL,
    )

    response = alerts.bot.send("workflow_run", payloads.run(30023))
    assert 200 <= response.status_code < 300
    alerts.deliver()

    # The other channel is not held back by the first channel's Retry-After.
    assert len(alerts.fake.posts(OTHER_CHANNEL)) == 1
    assert alerts.fake.posts(ALERT_CHANNEL) == []
    [first_try] = [time for method, time in alerts.fake.stamps if method == "chat.postMessage"][:1]
    waiting = [message for message in alerts.outbox("slack_alert") if message.status == "pending"]
    assert len(waiting) == 1
    assert (waiting[0].next_attempt_at - first_try).total_seconds() == 30

    assert alerts.clock is not None
    alerts.clock.advance(seconds=29)
    assert alerts.deliver() == 0
    alerts.clock.advance(seconds=1)
    assert alerts.deliver() == 1

    posts = alerts.fake.posts(ALERT_CHANNEL)
    assert len(posts) == 1
    stamps = [time for method, time in alerts.fake.stamps if method == "chat.postMessage"]
    calls_to_channel = [
        call
        for call in alerts.fake.calls_of("chat.postMessage")
        if call.body.get("channel") == ALERT_CHANNEL
    ]
    assert len(calls_to_channel) == 2
    assert stamps[-1] - stamps[0] >= timedelta(seconds=30)
    stored = {post.channel_id: post.ts for post in alerts.posts_stored()}
    assert stored[ALERT_CHANNEL] == "1717400000.000100"
    [sent] = [
        message
        for message in alerts.outbox("slack_alert")
        if message.target.endswith(ALERT_CHANNEL)
    ]
    assert sent.result["ts"] == "1717400000.000100"
    assert sent.attempts == 2


def test_abandoned_lease_sends_once(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(30801))
    with session_scope(alerts.engine) as session:
        claimed = outbox_store.claim_due(session=session, limit=10, lease=timedelta(minutes=5))
        assert [message.kind for message in claimed] == ["slack_alert"]
    # The process that claimed it died before sending: nothing goes out until its lease ends.
    assert alerts.deliver() == 0
    assert alerts.clock is not None
    alerts.clock.advance(minutes=6)
    alerts.settle()
    assert len(alerts.fake.posts()) == 1
    assert len(alerts.fake.calls_of("chat.postMessage")) == 1


def test_restart_after_slack_responded_posts_once(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(30901))
    alerts.settle()
    # As if the process died after Slack responded and the ts was stored, before the row was marked sent.
    with session_scope(alerts.engine) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.kind == "slack_alert")
            .values(status="pending", result={})
        )
    assert alerts.deliver() == 1
    assert len(alerts.fake.calls_of("chat.postMessage")) == 1
    [message] = alerts.outbox("slack_alert")
    assert message.status == "sent"
    assert message.result["ts"] == alerts.posts_stored()[0].ts


@pytest.mark.parametrize("code", ["channel_not_found", "is_archived", "not_in_channel"])
def test_rejected_channel_paused_beside_healthy(alerts: AlertDriver, code: str) -> None:
    alerts.subscribe()
    alerts.ask(f"subscribe octo-org/widget <#{ARCHIVED_CHANNEL}|old-alerts> --events failures")
    alerts.fake.channel_errors[ARCHIVED_CHANNEL] = code

    alerts.bot.send("workflow_run", payloads.run(31001))
    alerts.settle()
    alerts.bot.send("workflow_run", payloads.run(31002, sha="e" * 40))
    alerts.settle()

    assert len(alerts.fake.posts(ALERT_CHANNEL)) == 1
    assert len(alerts.fake.replies(ALERT_CHANNEL)) == 1
    tries = [
        call
        for call in alerts.fake.calls_of("chat.postMessage")
        if call.body.get("channel") == ARCHIVED_CHANNEL
    ]
    assert len(tries) == 1
    failed = [message for message in alerts.outbox("slack_alert") if message.status == "failed"]
    assert len(failed) == 1
    assert failed[0].attempts == 1

    listing = all_text(alerts.ask("subscriptions all"))
    lines = listing.splitlines()
    archived = next(index for index, line in enumerate(lines) if ARCHIVED_CHANNEL in line)
    assert (
        f"alerts paused: Slack returned {code} when posting to this channel" in lines[archived + 1]
    )
    assert listing.count("alerts paused") == 1


@pytest.mark.parametrize("code", ["invalid_auth", "account_inactive"])
def test_token_error_pauses_workspace(alerts: AlertDriver, code: str) -> None:
    alerts.subscribe()
    alerts.ask(f"subscribe octo-org/widget <#{ARCHIVED_CHANNEL}|old-alerts> --events failures")
    alerts.fake.channel_errors[ALERT_CHANNEL] = code
    alerts.fake.channel_errors[ARCHIVED_CHANNEL] = code

    alerts.bot.send("workflow_run", payloads.run(31051))
    alerts.settle()
    alerts.bot.send("workflow_run", payloads.run(31052, sha="e" * 40))
    alerts.settle()

    assert len(alerts.fake.calls_of("chat.postMessage")) == 2
    assert [message.status for message in alerts.outbox("slack_alert")] == ["failed", "failed"]
    listing = all_text(alerts.ask("subscriptions all"))
    assert (
        listing.count(f"alerts paused: Slack returned {code} for this workspace's bot token") == 2
    )


def test_resubscribe_resumes_paused(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.fake.channel_errors[ALERT_CHANNEL] = "not_in_channel"
    alerts.bot.send("workflow_run", payloads.run(31061))
    alerts.settle()
    assert "alerts paused" in all_text(alerts.ask("subscriptions"))

    del alerts.fake.channel_errors[ALERT_CHANNEL]
    alerts.ask("subscribe octo-org/widget --events failures")
    assert "alerts paused" not in all_text(alerts.ask("subscriptions"))
    alerts.bot.send("workflow_run", payloads.run(31062, name="Nightly"))
    alerts.settle()
    assert len(alerts.fake.posts()) == 1


def test_paused_subscription_gets_no_new_incident(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.ask(f"subscribe octo-org/widget <#{ARCHIVED_CHANNEL}|old-alerts> --events failures")
    alerts.fake.channel_errors[ARCHIVED_CHANNEL] = "is_archived"
    alerts.bot.send("workflow_run", payloads.run(31101))
    alerts.settle()
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            31102,
            conclusion="success",
            sha="f" * 40,
            started="2024-06-03T11:00:00Z",
            updated="2024-06-03T11:05:00Z",
        ),
    )
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            31103, sha="a" * 40, started="2024-06-03T12:00:00Z", updated="2024-06-03T12:05:00Z"
        ),
    )
    alerts.settle()
    assert len(alerts.fake.posts(ALERT_CHANNEL)) == 2
    tries = [
        call
        for call in alerts.fake.calls_of("chat.postMessage")
        if call.body.get("channel") == ARCHIVED_CHANNEL
    ]
    assert len(tries) == 1
    assert alerts.fake.updates(ARCHIVED_CHANNEL) == []


# --- a real process killed between queueing and sending ------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def post_webhook(url: str, event: str, payload: dict) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body),
    }
    return httpx.post(f"{url}/github/webhooks", content=body, headers=headers, timeout=10)


def post_command(url: str, fake: AlertSlack, text: str) -> httpx.Response:
    body = urlencode(
        {
            "team_id": TEAM_ID,
            "channel_id": ALERT_CHANNEL,
            "user_id": "U0USER0001",
            "command": "/release",
            "text": text,
            "response_url": fake.response_url(),
            "trigger_id": "0000.0000.trigger",
        }
    ).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": slack_signature(body, timestamp),
    }
    return httpx.post(f"{url}/slack/events", content=body, headers=headers, timeout=10)


def test_killed_while_sending_posts_once(
    database_url: str, settings: Settings, fake_slack: AlertSlack, clock: FakeClock, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO_ROOT),
        "DATABASE_URL": database_url,
        "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "SCHEDULER_ENABLED": "false",
        "WORKER_POLL_SECONDS": "0.05",
    }
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.alerts.serve_main", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:

        def is_ready() -> bool:
            assert process.poll() is None, log_path.read_text()[-3000:]
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(is_ready, "the bot process to start")
        assert (
            post_webhook(
                url, "installation", payloads.installation_created(("widget",))
            ).status_code
            == 202
        )
        answers = len(fake_slack.responses)
        wait_for(
            lambda: (
                post_command(
                    url, fake_slack, "subscribe octo-org/widget --events failures"
                ).status_code
                == 200
                and fake_slack.wait_for(lambda: len(fake_slack.responses) > answers, timeout=10)
            ),
            "the subscription",
        )

        fake_slack.hold_method = "chat.postMessage"
        assert post_webhook(url, "workflow_run", payloads.run(31201)).status_code == 202
        assert fake_slack.wait_for(lambda: len(fake_slack.held) == 1, timeout=30), (
            log_path.read_text()[-3000:]
        )
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    fake_slack.release()

    # Restart: the row is still leased by the dead process until its lease ends.
    app = create_app(settings)
    with TestClient(app) as client:
        app.state.outbox_worker.stop()
        driver = AlertDriver(bot=BotClient(client), fake=fake_slack, clock=clock)
        assert driver.deliver() == 0
        clock.advance(minutes=10)
        driver.settle()
        assert len(fake_slack.posts()) == 1
        [message] = driver.outbox("slack_alert")
        assert message.status == "sent"
        assert message.attempts == 2
    assert len(fake_slack.held) == 1


def test_server_error_backs_off(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.fake.plan_answer("chat.postMessage", 503, {"ok": False, "error": "service_unavailable"})
    alerts.bot.send("workflow_run", payloads.run(31301))
    alerts.deliver()

    [message] = alerts.outbox("slack_alert")
    assert message.status == "pending"
    assert "service_unavailable" in (message.last_error or "")
    assert alerts.clock is not None
    wait = (message.next_attempt_at - alerts.clock()).total_seconds()
    # The first retry waits 2 s, less up to half of it as jitter.
    assert 1.0 <= wait <= 2.0
    assert alerts.deliver() == 0
    alerts.clock.advance(seconds=2)
    assert alerts.deliver() == 1
    assert len(alerts.fake.posts()) == 1
