"""FailureAlerter's alerts go through the outbox: each is queued with its row, sent by the caller,
and a row the caller left unfinished is sent later by the bot's outbox worker."""

from __future__ import annotations

from bot import alert_outbox
from bot.alerter import AlertChannel, FailureAlerter
from bot.config import Settings
from tests.alerts.conftest import ALERT_CHANNEL, AlertDriver


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"the alerter slept {seconds} s")


def test_api_alert_sent_through_outbox(alerts: AlertDriver, settings: Settings) -> None:
    alerter = FailureAlerter(settings=settings, engine=alerts.engine, sleep=no_sleep)
    alerter.configure_channel(AlertChannel.SLACK, {"channel": ALERT_CHANNEL})

    assert (
        alerter.send_alert("Release 2.0.0 failed", "publish & <!here>", severity="critical") is True
    )

    [message] = alerts.outbox(alert_outbox.API_ALERT_KIND)
    assert message.status == "sent"
    assert message.attempts == 1
    [post] = alerts.fake.posts()
    assert message.result["ts"] == alerts.fake.calls_of("chat.postMessage")[0].answer["ts"]
    assert "publish &amp; &lt;!here&gt;" in str(post["blocks"])
    assert alerts.deliver() == 0


def test_throttled_api_alert_finished_by_bot(alerts: AlertDriver, settings: Settings) -> None:
    alerts.fake.plan_answer(
        "chat.postMessage", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "600"}
    )
    alerter = FailureAlerter(settings=settings, engine=alerts.engine, sleep=no_sleep)
    alerter.configure_channel(AlertChannel.SLACK, {"channel": ALERT_CHANNEL})

    assert alerter.send_alert("Release failed", "boom") is False
    assert "throttled for 600 s" in (alerter.get_alerts()[0].error or "")
    [message] = alerts.outbox(alert_outbox.API_ALERT_KIND)
    assert message.status == "pending"

    assert alerts.deliver() == 0
    assert alerts.clock is not None
    alerts.clock.advance(seconds=601)
    assert alerts.deliver() == 1
    [stored] = alerter.get_alerts()
    assert stored.status == "sent"
    assert stored.attempts == 2
    assert len(alerts.fake.posts()) == 1


def test_unsigned_webhook_alert_not_sent_after_restart(
    alerts: AlertDriver, settings: Settings
) -> None:
    alerter = FailureAlerter(settings=settings, engine=alerts.engine, sleep=no_sleep, max_wait=0.0)
    # Nothing listens on port 9 of 127.0.0.1, so the first attempt fails and the row stays queued.
    alerter.configure_channel(
        AlertChannel.WEBHOOK, {"url": "http://127.0.0.1:9/hook", "secret": "hook-secret"}
    )

    assert alerter.send_alert("Release failed", "boom", channel=AlertChannel.WEBHOOK) is False
    [message] = alerts.outbox(alert_outbox.API_ALERT_KIND)
    assert "hook-secret" not in str(message.payload)
    # The process that queued it is gone, and with it the secret.
    alert_outbox.LIVE_CONFIGS.clear()
    assert alerts.clock is not None
    alerts.clock.advance(minutes=10)
    alerts.deliver()

    [message] = alerts.outbox(alert_outbox.API_ALERT_KIND)
    assert message.status == "failed"
    [stored] = alerter.get_alerts()
    assert stored.status == "failed"
    assert "the webhook secret is never stored" in (stored.error or "")
