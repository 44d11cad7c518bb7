"""Live release status: one message per subscribed channel, posted once and edited in place,
sent from the outbox and never from the webhook path."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models_slack import SlackStatusMessage
from storage.outbox import OutboxMessage
from tests.slack import payloads
from tests.slack.conftest import SlackDriver, all_text, wait_until


def follow(slack: SlackDriver, *channels: str) -> None:
    slack.install_widget_repos("widget")
    for channel in channels or ("#ci-alerts",):
        slack.ask(f"subscribe octo-org/widget {channel}")


def publish_run(action: str, **overrides: object) -> dict:
    values: dict = {
        "name": "Publish",
        "branch": "main",
        "started": "2024-06-03T12:00:00Z",
        "updated": "2024-06-03T12:00:01Z",
    }
    if action in ("requested", "in_progress"):
        values.update(status="queued" if action == "requested" else "in_progress", conclusion=None)
    values.update(overrides)
    return payloads.workflow_run(30500, action=action, **values)


def publish_job(action: str, *, job_id: int = 50501, name: str = "upload") -> dict:
    if action == "completed":
        return payloads.workflow_job(
            job_id,
            30500,
            name=name,
            workflow="Publish",
            started="2024-06-03T12:00:10Z",
            completed="2024-06-03T12:02:10Z",
        )
    return payloads.workflow_job(
        job_id,
        30500,
        name=name,
        workflow="Publish",
        action=action,
        status=action,
        conclusion=None,
        started="2024-06-03T12:00:10Z",
        completed=None,
    )


def status_messages(slack: SlackDriver) -> list[SlackStatusMessage]:
    with slack.bot.session() as session:
        return list(
            session.scalars(
                select(SlackStatusMessage).order_by(SlackStatusMessage.channel_id)
            ).all()
        )


def outbox_statuses(slack: SlackDriver) -> list[str]:
    with slack.bot.session() as session:
        return list(session.scalars(select(OutboxMessage.status).order_by(OutboxMessage.id)).all())


def settled(slack: SlackDriver, method: str, count: int) -> bool:
    return slack.fake.wait_for(
        lambda: len([call for call in slack.fake.calls if call.method == method]) >= count
    )


def test_release_run_posts_once_then_edits(slack: SlackDriver) -> None:
    follow(slack, "#ci-alerts", "#random")

    slack.bot.send("workflow_run", publish_run("requested"))
    assert settled(slack, "chat.postMessage", 2)
    slack.bot.send("workflow_job", publish_job("in_progress"))
    assert settled(slack, "chat.update", 2)
    slack.bot.send("workflow_job", publish_job("completed"))
    slack.bot.send("workflow_run", publish_run("completed", updated="2024-06-03T12:03:00Z"))
    assert wait_until(lambda: all(message.is_final for message in status_messages(slack)))

    posts = slack.fake.calls_of("chat.postMessage")
    assert sorted(call.body["channel"] for call in posts) == ["C0ALERTS01", "C0OTHER001"]
    stored = {message.channel_id: message.ts for message in status_messages(slack)}
    returned = {call.body["channel"]: call.answer["ts"] for call in posts}
    assert stored == returned
    updates = slack.fake.calls_of("chat.update")
    assert {call.body["ts"] for call in updates} == set(returned.values())
    final = slack.fake.messages[("C0ALERTS01", returned["C0ALERTS01"])]
    text = all_text(final)
    assert "Publish #100 finished: octo-org/widget" in text
    assert "*Critical path*" in text
    assert "*Bottlenecks*" in text
    assert slack.fake.rejected == []


def test_webhook_path_only_records(slack: SlackDriver) -> None:
    follow(slack)
    outbox_worker = slack.bot.app.state.outbox_worker
    outbox_worker.stop()

    slack.bot.send("workflow_run", publish_run("in_progress"))

    assert slack.fake.calls_of("chat.postMessage") == []
    with slack.bot.session() as session:
        queued = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "slack_live_status")
        ).all()
    assert [(row.status, row.target) for row in queued] == [("pending", "T0TEAM0001/C0ALERTS01")]
    outbox_worker.start()
    assert settled(slack, "chat.postMessage", 1)


def test_pending_update_coalesces(slack: SlackDriver) -> None:
    follow(slack)
    slack.bot.app.state.outbox_worker.stop()
    slack.bot.send("workflow_run", publish_run("in_progress"))
    for job_id in range(50601, 50611):
        slack.bot.send(
            "workflow_job", publish_job("in_progress", job_id=job_id, name=f"upload-{job_id}")
        )
    with slack.bot.session() as session:
        queued = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "slack_live_status")
        ).all()
    assert len(queued) == 1
    slack.bot.app.state.outbox_worker.start()
    assert settled(slack, "chat.postMessage", 1)
    posted = slack.fake.calls_of("chat.postMessage")[0]
    assert "10 running" in all_text(posted.body)


def test_ordinary_run_posts_nothing(slack: SlackDriver) -> None:
    follow(slack)
    slack.bot.send(
        "workflow_run",
        payloads.workflow_run(30700, action="in_progress", status="in_progress", conclusion=None),
    )
    with slack.bot.session() as session:
        queued = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "slack_live_status")
        ).all()
    assert queued == []
    assert status_messages(slack) == []


def test_tag_run_is_a_release(slack: SlackDriver) -> None:
    follow(slack)
    slack.bot.send(
        "workflow_run",
        payloads.workflow_run(
            30800, action="requested", status="queued", conclusion=None, branch="v2.0.0"
        ),
    )
    assert settled(slack, "chat.postMessage", 1)


def test_subscription_without_publishes_gets_nothing(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget --events failures")
    slack.bot.send("workflow_run", publish_run("requested"))
    assert status_messages(slack) == []


def test_rate_limited_post_retried_after_retry_after(slack: SlackDriver) -> None:
    follow(slack)
    slack.fake.plan_failure("chat.postMessage", status=429, retry_after=1)
    slack.bot.send("workflow_run", publish_run("requested"))
    assert settled(slack, "chat.postMessage", 2)
    assert wait_until(lambda: status_messages(slack)[0].ts is not None)
    statuses = [call.status for call in slack.fake.calls_of("chat.postMessage")]
    assert statuses == [429, 200]
    assert len(slack.fake.messages) == 1


@pytest.mark.parametrize(
    "error",
    ["channel_not_found", "not_in_channel", "is_archived", "invalid_blocks", "msg_too_long"],
)
def test_channel_error_stops_updates(slack: SlackDriver, error: str) -> None:
    follow(slack)
    slack.fake.channel_errors["C0ALERTS01"] = error
    slack.bot.send("workflow_run", publish_run("requested"))
    assert settled(slack, "chat.postMessage", 1)
    assert wait_until(lambda: outbox_statuses(slack) == ["failed"])
    slack.bot.send("workflow_job", publish_job("in_progress"))
    slack.bot.send("workflow_job", publish_job("completed"))
    assert len(slack.fake.calls_of("chat.postMessage")) == 1
    assert outbox_statuses(slack) == ["failed"]
    assert status_messages(slack)[0].last_error == error


def test_lost_message_posted_again(slack: SlackDriver) -> None:
    follow(slack)
    slack.bot.send("workflow_run", publish_run("requested"))
    assert settled(slack, "chat.postMessage", 1)
    assert wait_until(lambda: status_messages(slack)[0].ts is not None)
    slack.fake.messages.clear()
    slack.bot.send("workflow_job", publish_job("in_progress"))
    assert settled(slack, "chat.postMessage", 2)
    assert wait_until(lambda: status_messages(slack)[0].ts == "1717400000.000002")


def test_subscription_filters_are_globs(slack: SlackDriver) -> None:
    slack.install_widget_repos("widget")
    slack.ask("subscribe octo-org/widget --workflow publish* --branch MAIN")
    slack.ask("subscribe octo-org/widget #random --workflow Deploy")
    slack.bot.send("workflow_run", publish_run("requested"))
    assert settled(slack, "chat.postMessage", 1)
    assert [message.channel_id for message in status_messages(slack)] == ["C0ALERTS01"]
