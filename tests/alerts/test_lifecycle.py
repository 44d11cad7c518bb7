"""Incident lifecycle: one channel post per incident, later failures in its thread, a resolve that
edits the post and replies, reminders, the flaky marker, and a re-run that resolves."""

from __future__ import annotations

from datetime import timedelta

from bot.config import Settings
from handlers.github.reactions.alerts import queue_reminders
from storage.incidents import count_flaky_failures
from tests.alerts import payloads
from tests.alerts.conftest import ALERT_CHANNEL, AlertDriver, buttons_of, mrkdwn_texts
from tests.slack.conftest import all_text


def test_fail_fail_pass_fail_two_incidents(alerts: AlertDriver) -> None:
    alerts.subscribe()

    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30101, sha="a" * 40, started="2024-06-03T10:00:00Z", updated="2024-06-03T10:05:00Z"
        ),
    )
    alerts.settle()
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30102, sha="b" * 40, started="2024-06-03T11:00:00Z", updated="2024-06-03T11:05:00Z"
        ),
    )
    alerts.settle()
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30103,
            sha="c" * 40,
            conclusion="success",
            started="2024-06-03T12:00:00Z",
            updated="2024-06-03T12:05:00Z",
        ),
    )
    alerts.settle()
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30104, sha="d" * 40, started="2024-06-03T13:00:00Z", updated="2024-06-03T13:05:00Z"
        ),
    )
    alerts.settle()

    posts = alerts.fake.posts()
    assert len(posts) == 2
    first_ts = alerts.fake.calls_of("chat.postMessage")[0].answer["ts"]
    replies = alerts.fake.replies()
    assert [reply["thread_ts"] for reply in replies] == [first_ts, first_ts]
    assert "Failed again" in all_text(replies[0])
    assert "failure 2 of this incident" in all_text(replies[0])
    assert "Resolved" in all_text(replies[1])
    assert "2h 0m after the first failure" in all_text(replies[1])

    updates = alerts.fake.updates()
    assert len(updates) == 1
    assert updates[0]["ts"] == first_ts
    assert "Resolved" in all_text(updates[0])
    assert "after 2h 0m (time to recover)" in all_text(updates[0])
    assert [button.get("action_id") for button in buttons_of(updates[0])] == ["alert_open_run"]

    incidents = alerts.incidents()
    assert [(incident.status, incident.failure_count) for incident in incidents] == [
        ("resolved", 2),
        ("open", 1),
    ]
    assert incidents[0].recovery_s == 7200.0
    assert incidents[0].resolved_run_id == 30103


def test_root_message_content(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.fake.users_by_email["dev@example.com"] = "U0DEV00001"
    alerts.bot.send(
        "workflow_job",
        payloads.job(
            60001,
            30201,
            name="test (3.11)",
            steps=[
                ("Check out", "success", "2024-06-03T10:00:10Z", "2024-06-03T10:00:20Z"),
                ("Run pytest", "failure", "2024-06-03T10:00:20Z", "2024-06-03T10:03:40Z"),
            ],
        ),
    )
    alerts.bot.send("workflow_job", payloads.job(60002, 30201, name="lint", conclusion="success"))
    alerts.bot.send("workflow_run", payloads.run(30201, title="Fix the parser", run_number=77))
    alerts.settle()

    [post] = alerts.fake.posts()
    text = all_text(post)
    assert "CI failed in octo-org/widget" in text
    assert "<https://github.com/octo-org/widget/actions/runs/30201|CI #77>" in text
    assert "<https://github.com/octo-org/widget/tree/main|main>" in text
    assert "`1919191` Fix the parser" in text
    assert "<@U0DEV00001> (dev-user)" in text
    assert "*Severity*\nerror" in text
    assert (
        "<https://github.com/octo-org/widget/actions/runs/30201/job/60001|test (3.11)> · failure · 3m 40s"
        in text
    )
    assert "↳ Run pytest · 3m 20s" in text
    assert "Check out" not in text
    assert "lint" not in text
    assert [(button["action_id"], button.get("value")) for button in buttons_of(post)] == [
        ("alert_rerun", str(alerts.failures()[0].id)),
        ("alert_silence_1h", str(alerts.incidents()[0].id)),
        ("alert_silence_1d", str(alerts.incidents()[0].id)),
        ("alert_open_run", None),
    ]
    assert buttons_of(post)[3]["url"] == "https://github.com/octo-org/widget/actions/runs/30201"
    assert len(alerts.fake.calls_of("users.lookupByEmail")) == 1


def test_unknown_author_not_mentioned(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(30301, email="nobody@example.com"))
    alerts.bot.send("workflow_run", payloads.run(30302, email="nobody@example.com", sha="f" * 40))
    alerts.settle()
    [post] = alerts.fake.posts()
    assert "<@" not in "\n".join(mrkdwn_texts(post))
    assert "*Triggered by*\ndev-user" in all_text(post)
    # The miss is stored, so the second failure does not ask Slack again.
    assert len(alerts.fake.calls_of("users.lookupByEmail")) == 1


def test_rerun_attempt_resolves_and_marks_flaky(alerts: AlertDriver) -> None:
    alerts.subscribe()
    sha = "4" * 40
    alerts.bot.send(
        "workflow_job",
        payloads.job(
            50041,
            30004,
            name="lint",
            conclusion="success",
            started="2024-06-03T11:00:10Z",
            completed="2024-06-03T11:01:10Z",
        ),
    )
    alerts.bot.send(
        "workflow_job",
        payloads.job(
            50042,
            30004,
            name="test",
            started="2024-06-03T11:00:10Z",
            completed="2024-06-03T11:03:50Z",
        ),
    )
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30004, sha=sha, started="2024-06-03T11:00:00Z", updated="2024-06-03T11:04:00Z"
        ),
    )
    alerts.settle()
    alerts.bot.send(
        "workflow_job",
        payloads.job(
            50043,
            30004,
            name="test",
            conclusion="success",
            attempt=2,
            started="2024-06-03T11:30:10Z",
            completed="2024-06-03T11:35:00Z",
        ),
    )
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30004,
            sha=sha,
            conclusion="success",
            attempt=2,
            created="2024-06-03T11:00:00Z",
            started="2024-06-03T11:30:00Z",
            updated="2024-06-03T11:35:12Z",
        ),
    )
    alerts.settle()

    assert len(alerts.fake.posts()) == 1
    root_ts = alerts.fake.calls_of("chat.postMessage")[0].answer["ts"]
    [update] = alerts.fake.updates()
    assert update["ts"] == root_ts
    assert "Resolved" in all_text(update)
    assert "attempt 2" in all_text(update)
    replies = alerts.fake.replies()
    assert [reply["thread_ts"] for reply in replies] == [root_ts, root_ts]
    texts = [all_text(reply) for reply in replies]
    assert any("Resolved" in text and "31m 12s after the first failure" in text for text in texts)
    assert any(
        "Marked flaky" in text and "attempt 1 failed" in text and "`4444444`" in text
        for text in texts
    )

    [failure] = alerts.failures()
    assert failure.flaky is True
    assert (failure.flaky_run_id, failure.flaky_attempt) == (30004, 2)
    with alerts.bot.session() as session:
        assert count_flaky_failures(session=session, repo="octo-org/widget") == 1
    [incident] = alerts.incidents()
    assert incident.recovery_s == 1872.0


def test_redelivered_failure_posts_once(alerts: AlertDriver) -> None:
    alerts.subscribe()
    payload = payloads.run(30401)
    alerts.bot.send("workflow_run", payload)
    alerts.bot.send("workflow_run", payload)
    alerts.settle()
    assert len(alerts.fake.posts()) == 1
    assert alerts.fake.replies() == []
    assert len(alerts.failures()) == 1


def test_older_success_does_not_resolve(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send(
        "workflow_run",
        payloads.run(30502, started="2024-06-03T10:10:00Z", updated="2024-06-03T10:15:00Z"),
    )
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30501,
            conclusion="success",
            sha="e" * 40,
            started="2024-06-03T10:00:00Z",
            updated="2024-06-03T10:16:00Z",
        ),
    )
    alerts.settle()
    assert [incident.status for incident in alerts.incidents()] == ["open"]
    assert alerts.fake.updates() == []


def test_reminder_after_repeat_interval(alerts: AlertDriver, settings: Settings) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(30601))
    alerts.settle()
    [incident] = alerts.incidents()
    opened = incident.opened_at

    assert (
        queue_reminders(alerts.engine, settings, now=opened + timedelta(hours=3, minutes=59)) == 0
    )
    assert queue_reminders(alerts.engine, settings, now=opened + timedelta(hours=4)) == 1
    assert queue_reminders(alerts.engine, settings, now=opened + timedelta(hours=5)) == 0
    assert queue_reminders(alerts.engine, settings, now=opened + timedelta(hours=8)) == 1
    alerts.settle()

    replies = alerts.fake.replies()
    assert len(replies) == 2
    assert "Still failing after 4h 0m" in all_text(replies[0])
    assert "Still failing after 8h 0m" in all_text(replies[1])
    assert all(reply["thread_ts"] == alerts.posts_stored()[0].ts for reply in replies)


def test_channel_of_alert_is_bare_id(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(30701))
    alerts.settle()
    [post] = alerts.posts_stored()
    assert (post.channel_id, post.posted_channel) == (ALERT_CHANNEL, ALERT_CHANNEL)
    assert isinstance(post.ts, str)


def test_new_run_passing_same_commit_marks_flaky(alerts: AlertDriver) -> None:
    alerts.subscribe()
    sha = "9" * 40
    alerts.bot.send(
        "workflow_run",
        payloads.run(30751, sha=sha, run_number=5, updated="2024-06-03T10:05:00Z"),
    )
    alerts.settle()
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30752,
            sha=sha,
            run_number=6,
            conclusion="success",
            started="2024-06-03T10:10:00Z",
            updated="2024-06-03T10:15:00Z",
        ),
    )
    alerts.settle()

    texts = [all_text(reply) for reply in alerts.fake.replies()]
    assert any(
        "Marked flaky: <https://github.com/octo-org/widget/actions/runs/30751|CI #5> attempt 1 failed, and "
        "<https://github.com/octo-org/widget/actions/runs/30752|CI #6> passed on the same commit `9999999`."
        in text
        for text in texts
    )
    assert [failure.flaky for failure in alerts.failures()] == [True]
