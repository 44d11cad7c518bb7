"""FailureAlerter against local fakes: Slack's Web API and an incoming webhook, a signed JSON
webhook, an SMTP server with STARTTLS, and the console. Configuration errors name the field."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.alerter import AlertChannel, AlertRecord, FailureAlerter
from bot.config import Settings, load_settings
from tests.api.fake_servers import FakeHttpServer, Reply, fake_http_server, smtp_server

SLACK_TOKEN = "xoxb-test-token-0000"
POST_MESSAGE = "/api/chat.postMessage"


@pytest.fixture
def fake() -> Iterator[FakeHttpServer]:
    with fake_http_server() as server:
        yield server


def settings_for(database_url: str, fake: FakeHttpServer | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {"database_url": database_url}
    if fake is not None:
        values.update(slack_bot_token=SLACK_TOKEN, slack_api_url=f"{fake.url}/api/")
    return load_settings(_env_file=None, **values, **overrides)  # type: ignore[arg-type]


class Sleeps(list[float]):
    """Records the waits the alerter requests, instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_alerter(database_url: str, engine: Engine, fake: FakeHttpServer | None = None) -> tuple[FailureAlerter, Sleeps]:
    sleeps = Sleeps()
    alerter = FailureAlerter(settings=settings_for(database_url, fake), engine=engine, sleep=sleeps)
    return alerter, sleeps


def test_slack_retry_after_then_sent(database_url: str, engine: Engine, fake: FakeHttpServer) -> None:
    fake.script(
        POST_MESSAGE,
        Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"}),
        Reply(200, {"ok": True, "channel": "C0ALERTS01", "ts": "1717400000.000100"}),
    )
    alerter, sleeps = make_alerter(database_url, engine, fake)
    alerter.configure_channel(AlertChannel.SLACK, {"channel": "C0ALERTS01"})

    accepted = alerter.send_alert("Release <!channel> failed", "publish & <@U0USER0002>", channel=AlertChannel.SLACK, severity="critical")

    assert accepted is True
    assert sleeps == [30.0]
    calls = fake.calls(POST_MESSAGE)
    assert len(calls) == 2
    assert calls[0].headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    body = calls[1].json()
    assert body["channel"] == "C0ALERTS01"
    assert "Release &lt;!channel&gt; failed" in body["blocks"][0]["text"]["text"]
    assert body["blocks"][1]["text"]["text"] == "publish &amp; &lt;@U0USER0002&gt;"
    [stored] = alerter.get_alerts()
    assert stored.status == "sent"
    assert stored.attempts == 2
    assert stored.response == {"channel": "C0ALERTS01", "ts": "1717400000.000100"}
    assert stored.severity == "critical"


def test_slack_channel_not_found_not_retried(database_url: str, engine: Engine, fake: FakeHttpServer) -> None:
    fake.script(POST_MESSAGE, Reply(200, {"ok": False, "error": "channel_not_found"}))
    alerter, sleeps = make_alerter(database_url, engine, fake)
    alerter.configure_channel(AlertChannel.SLACK, {"channel": "C0MISSING1"})

    accepted = alerter.send_alert("Release failed", "boom", channel=AlertChannel.SLACK, severity="error")

    assert accepted is False
    assert sleeps == []
    assert len(fake.calls(POST_MESSAGE)) == 1
    [stored] = alerter.get_alerts(AlertChannel.SLACK)
    assert stored.status == "failed"
    assert "channel_not_found" in (stored.error or "")


def test_slack_retries_are_bounded(database_url: str, engine: Engine, fake: FakeHttpServer) -> None:
    fake.script(POST_MESSAGE, Reply(503, "unavailable"))
    alerter, sleeps = make_alerter(database_url, engine, fake)
    alerter.configure_channel(AlertChannel.SLACK, {"channel": "C0ALERTS01"})

    assert alerter.send_alert("Release failed", "boom", channel="slack") is False

    assert len(fake.calls(POST_MESSAGE)) == 4
    assert sleeps == [1.0, 2.0, 4.0]
    assert "gave up after 4 attempts" in (alerter.get_alerts()[0].error or "")


def test_slack_long_retry_after_not_awaited(database_url: str, engine: Engine, fake: FakeHttpServer) -> None:
    fake.script(POST_MESSAGE, Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "600"}))
    alerter, sleeps = make_alerter(database_url, engine, fake)
    alerter.configure_channel(AlertChannel.SLACK, {"channel": "C0ALERTS01"})

    assert alerter.send_alert("Release failed", "boom", channel=AlertChannel.SLACK) is False

    assert sleeps == []
    assert "throttled for 600 s" in (alerter.get_alerts()[0].error or "")


def test_slack_incoming_webhook(database_url: str, engine: Engine, fake: FakeHttpServer) -> None:
    fake.script("/services/T0/B0/ok", Reply(200, "ok"))
    fake.script("/services/T0/B0/gone", Reply(404, "no_service"))
    alerter, _ = make_alerter(database_url, engine)

    alerter.configure_channel(AlertChannel.SLACK, {"webhook": f"{fake.url}/services/T0/B0/ok"})
    sent = alerter.send_alert("Release 1.0.0 published", "all good", channel=AlertChannel.SLACK)
    alerter.configure_channel(AlertChannel.SLACK, {"webhook": f"{fake.url}/services/T0/B0/gone"})
    failed = alerter.send_alert("Release 1.0.0 published", "all good", channel=AlertChannel.SLACK)

    assert sent is True
    assert failed is False
    assert fake.calls("/services/T0/B0/ok")[0].json()["text"] == "[info] Release 1.0.0 published: all good"
    assert len(fake.calls("/services/T0/B0/gone")) == 1
    newest = alerter.get_alerts()[0]
    assert "no_service" in (newest.error or "")
    assert newest.target == "slack webhook at 127.0.0.1"


def test_webhook_signed_and_retried(database_url: str, engine: Engine, fake: FakeHttpServer) -> None:
    fake.script("/hooks/release", Reply(500, "oops"), Reply(204, ""))
    alerter, sleeps = make_alerter(database_url, engine)
    alerter.configure_channel(AlertChannel.WEBHOOK, {"url": f"{fake.url}/hooks/release", "secret": "hook-secret"})

    accepted = alerter.send_alert("Release failed", "upload timed out", channel=AlertChannel.WEBHOOK, severity="error")

    assert accepted is True
    assert sleeps == [1.0]
    first, second = fake.calls("/hooks/release")
    expected = "sha256=" + hmac.new(b"hook-secret", second.body, hashlib.sha256).hexdigest()
    assert second.headers["x-release-bot-signature"] == expected
    assert first.body == second.body
    assert second.json()["title"] == "Release failed"
    assert second.json()["severity"] == "error"
    stored = alerter.get_alerts(AlertChannel.WEBHOOK)[0]
    assert stored.attempts == 2
    assert "hook-secret" not in repr(stored)


def test_email_sent_over_starttls(database_url: str, engine: Engine, tmp_path: Path) -> None:
    with smtp_server(tmp_path) as (collector, port, ca_file):
        alerter, _ = make_alerter(database_url, engine)
        alerter.configure_channel(
            AlertChannel.EMAIL,
            {"to": ["release@example.com"], "from": "bot@example.com", "host": "127.0.0.1", "port": port, "ca_file": str(ca_file)},
        )
        accepted = alerter.send_alert("Release 2.0.0 failed", "publish step failed", channel=AlertChannel.EMAIL, severity="critical")

    assert accepted is True
    [message] = collector.messages
    assert collector.tls == [True]
    assert message["Subject"] == "[critical] Release 2.0.0 failed"
    assert message["To"] == "release@example.com"
    assert message.get_payload().strip() == "publish step failed"


def test_email_without_trusted_certificate_fails(database_url: str, engine: Engine, tmp_path: Path) -> None:
    with smtp_server(tmp_path) as (collector, port, _):
        alerter, sleeps = make_alerter(database_url, engine)
        alerter.configure_channel(
            AlertChannel.EMAIL, {"to": "release@example.com", "from": "bot@example.com", "host": "127.0.0.1", "port": port}
        )
        accepted = alerter.send_alert("Release failed", "boom", channel=AlertChannel.EMAIL)

    assert accepted is False
    assert collector.messages == []
    assert sleeps == []
    assert "STARTTLS failed" in (alerter.get_alerts()[0].error or "")


def test_console_prints_escaped(database_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    alerter, _ = make_alerter(database_url, engine)
    alerter.configure_channel(AlertChannel.CONSOLE, {})

    assert alerter.send_alert("Release failed", "step\x1b[31m red", channel=AlertChannel.CONSOLE, severity="warning") is True

    assert capsys.readouterr().out == "[WARNING] Release failed: step\\u001b[31m red\n"


def test_handlers_called_and_alone_deliver(database_url: str, engine: Engine) -> None:
    alerter, _ = make_alerter(database_url, engine)
    seen: list[AlertRecord] = []
    alerter.register_handler(AlertChannel.WEBHOOK, seen.append)

    def broken(record: AlertRecord) -> None:
        raise RuntimeError("pager down")

    assert alerter.send_alert("Release failed", "boom", channel=AlertChannel.WEBHOOK) is True
    alerter.register_handler(AlertChannel.WEBHOOK, broken)
    assert alerter.send_alert("Release failed again", "boom", channel=AlertChannel.WEBHOOK) is False

    assert [record.title for record in seen] == ["Release failed", "Release failed again"]
    assert alerter.list_channels() == [AlertChannel.WEBHOOK]
    assert [alert.status for alert in alerter.get_alerts()] == ["failed", "sent"]


def test_send_to_all_configured(database_url: str, engine: Engine, capsys: pytest.CaptureFixture[str], fake: FakeHttpServer) -> None:
    fake.script("/hook", Reply(200, "ok"))
    alerter, _ = make_alerter(database_url, engine)
    alerter.configure_channel(AlertChannel.CONSOLE, {"stream": "stdout"})
    alerter.configure_channel(AlertChannel.WEBHOOK, {"url": f"{fake.url}/hook", "secret": "s"})

    assert alerter.send_alert("Release published", "2.0.0") is True

    assert {alert.channel for alert in alerter.get_alerts()} == {AlertChannel.CONSOLE, AlertChannel.WEBHOOK}
    assert "Release published" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("channel", "config", "message"),
    [
        (AlertChannel.WEBHOOK, {"url": "ftp://example.com/hook", "secret": "s"}, "invalid webhook url 'ftp://example.com/hook'"),
        (AlertChannel.WEBHOOK, {"url": "https://example.com/hook"}, "missing webhook 'secret'"),
        (AlertChannel.SLACK, {}, "missing slack 'channel'"),
        (AlertChannel.SLACK, {"webhook": "hooks.slack.com/services/x"}, "invalid slack webhook"),
        (AlertChannel.SLACK, {"channel": "C0ALERTS01"}, "set SLACK_BOT_TOKEN"),
        (AlertChannel.SLACK, {"webhook": "https://h.example/x", "chanel": "C1"}, "unknown slack setting 'chanel'"),
        (AlertChannel.EMAIL, {"to": "nobody", "from": "bot@example.com", "host": "h"}, "invalid email 'to'"),
        (AlertChannel.EMAIL, {"to": "a@example.com", "from": "bot@example.com"}, "missing email 'host'"),
        (AlertChannel.EMAIL, {"to": "a@example.com", "host": "h"}, "invalid email 'from' None"),
        (AlertChannel.CONSOLE, {"stream": "tty"}, "invalid console stream 'tty'"),
        ("pager", {}, "invalid channel 'pager'"),
    ],
)
def test_bad_config_names_field(database_url: str, engine: Engine, channel: object, config: dict[str, object], message: str) -> None:
    alerter, _ = make_alerter(database_url, engine)

    with pytest.raises(ValueError, match=message):
        alerter.configure_channel(channel, config)  # type: ignore[arg-type]


def test_send_rejects_bad_input(database_url: str, engine: Engine) -> None:
    alerter, _ = make_alerter(database_url, engine)

    with pytest.raises(ValueError, match="no alert channel is configured"):
        alerter.send_alert("Release failed", "boom")
    alerter.configure_channel(AlertChannel.CONSOLE, {})
    with pytest.raises(ValueError, match="invalid severity 'fatal'"):
        alerter.send_alert("Release failed", "boom", channel=AlertChannel.CONSOLE, severity="fatal")
    with pytest.raises(ValueError, match="channel 'slack' is not configured"):
        alerter.send_alert("Release failed", "boom", channel=AlertChannel.SLACK)
    with pytest.raises(ValueError, match="invalid title ''"):
        alerter.send_alert("", "boom", channel=AlertChannel.CONSOLE)
    assert alerter.get_alerts() == []
