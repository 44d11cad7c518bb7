"""Channel digests: `/release digest`, one digest per channel and period, its exact content,
escaping of names, and the "and N more" summary of many repositories.

They live with the alert tests for those fixtures: the test clock, the fake Slack that
records channel posts, and the outbox the test sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from bot.config import Settings
from bot.digest import due_window, queue_due_digests
from bot.render.slack import MAX_MESSAGE_BLOCKS, MAX_MESSAGE_TEXT, text_size
from bot.render.slack_digest import DigestView, render_digest
from storage.db import create_db_engine, downgrade_database, upgrade_database
from storage.digests import RepoFigures, SlowJob
from tests.alerts import payloads
from tests.alerts.conftest import AlertDriver
from tests.slack.conftest import all_text

CHANNEL = "C0ALERTS01"
# Tuesday 2024-06-04, 30 s after the default digest time.
DUE = datetime(2024, 6, 4, 9, 0, 30, tzinfo=UTC)


def bot_settings(alerts: AlertDriver) -> Settings:
    """The settings the running bot was started with."""
    return alerts.bot.app.state.settings


def digest_posts(alerts: AlertDriver, channel: str = CHANNEL) -> list[dict[str, Any]]:
    """Channel posts that are digests (the channel also gets failure alerts)."""
    return [post for post in alerts.fake.posts(channel) if "digest" in str(post.get("text"))]


def schedule(alerts: AlertDriver, text: str) -> str:
    """Run a `/release digest` command and return the text of its response."""
    return all_text(alerts.ask(text))


def test_digest_daily_posts_once_per_day(alerts: AlertDriver) -> None:
    alerts.subscribe()
    answer = schedule(alerts, "digest daily <#C0ALERTS01|ci-alerts>")
    assert "<#C0ALERTS01> will get a daily digest every day at 09:00 UTC" in answer
    assert alerts.clock is not None
    alerts.clock.current = DUE

    early = queue_due_digests(alerts.engine, bot_settings(alerts), now=DUE - timedelta(minutes=1))
    first = queue_due_digests(alerts.engine, bot_settings(alerts), now=DUE)
    alerts.deliver()
    second = queue_due_digests(alerts.engine, bot_settings(alerts), now=DUE + timedelta(minutes=1))
    alerts.deliver()

    assert early == 0
    assert first == 1
    assert second == 0
    assert len(digest_posts(alerts)) == 1
    assert digest_posts(alerts)[0]["text"] == "Daily digest · 2024-06-03"
    next_day = queue_due_digests(alerts.engine, bot_settings(alerts), now=DUE + timedelta(days=1))
    assert next_day == 1


def test_digest_restart_does_not_repost(alerts: AlertDriver, settings: Settings) -> None:
    alerts.subscribe()
    schedule(alerts, "digest daily")
    other_engine = create_db_engine(settings.database_url)

    try:
        first = queue_due_digests(alerts.engine, settings, now=DUE)
        from_second_process = queue_due_digests(other_engine, settings, now=DUE)
    finally:
        other_engine.dispose()

    assert first == 1
    assert from_second_process == 0
    assert len(alerts.outbox("slack_digest")) == 1
    assert (
        alerts.outbox("slack_digest")[0].dedupe_key
        == "slack_digest:T0TEAM0001/C0ALERTS01:daily:2024-06-04"
    )


def test_digest_off_stops_it(alerts: AlertDriver) -> None:
    alerts.subscribe()
    schedule(alerts, "digest weekly #ci-alerts")

    shown = schedule(alerts, "digest")
    stopped = schedule(alerts, "digest off <#C0ALERTS01|>")
    queued = queue_due_digests(
        alerts.engine, bot_settings(alerts), now=datetime(2024, 6, 3, 9, 5, tzinfo=UTC)
    )
    shown_after = schedule(alerts, "digest")
    stopped_again = schedule(alerts, "digest off")

    assert "<#C0ALERTS01> gets a weekly digest on Mondays at 09:00 UTC." in shown
    assert "<#C0ALERTS01> gets no more digests." in stopped
    assert queued == 0
    assert "<#C0ALERTS01> gets no digest." in shown_after
    assert "<#C0ALERTS01> had no digest scheduled." in stopped_again


def test_digest_rejects_unknown_word(alerts: AlertDriver) -> None:
    answer = schedule(alerts, "digest hourly")

    assert (
        "unexpected argument 'hourly': give daily, weekly or off, and at most one #channel"
        in answer
    )
    assert "/release digest [daily | weekly | off] [#channel]" in answer


def send_day(alerts: AlertDriver) -> None:
    """Runs of octo-org/widget: one on 2024-06-02, three on 2024-06-03 (a failure, later passing on
    the same commit), and two jobs whose names need escaping."""
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30200,
            conclusion="success",
            sha="0" * 40,
            started="2024-06-02T10:00:00Z",
            updated="2024-06-02T10:04:00Z",
        ),
    )
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30201,
            conclusion="success",
            sha="1" * 40,
            started="2024-06-03T10:00:00Z",
            updated="2024-06-03T10:05:00Z",
        ),
    )
    alerts.bot.send(
        "workflow_job",
        payloads.job(
            50201,
            30201,
            name="build <!channel> & co",
            conclusion="success",
            started="2024-06-03T10:00:10Z",
            completed="2024-06-03T10:03:50Z",
        ),
    )
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30202,
            conclusion="failure",
            sha="2" * 40,
            started="2024-06-03T11:00:00Z",
            updated="2024-06-03T11:10:00Z",
        ),
    )
    alerts.bot.send(
        "workflow_job",
        payloads.job(
            50202,
            30202,
            name="lint",
            conclusion="failure",
            started="2024-06-03T11:00:10Z",
            completed="2024-06-03T11:01:10Z",
        ),
    )
    alerts.bot.send(
        "workflow_run",
        payloads.run(
            30203,
            conclusion="success",
            sha="2" * 40,
            started="2024-06-03T12:00:00Z",
            updated="2024-06-03T12:06:00Z",
        ),
    )


def test_digest_content_exact(alerts: AlertDriver) -> None:
    alerts.subscribe()
    schedule(alerts, "digest daily")
    send_day(alerts)
    assert alerts.clock is not None
    alerts.clock.current = DUE

    queue_due_digests(alerts.engine, bot_settings(alerts), now=DUE)
    alerts.deliver()

    [post] = digest_posts(alerts)
    assert post["text"] == "Daily digest · 2024-06-03"
    texts = all_text(post)
    assert (
        "From 2024-06-03 00:00 UTC to 2024-06-04 00:00 UTC · 1 repository followed by this channel"
        in texts
    )
    assert (
        "*<https://github.com/octo-org/widget|octo-org/widget>*\n"
        "3 runs · failure rate 33.3% · "
        "p50 6m 0s (+2m 0s against the previous day) · "
        "p95 9m 36s (+5m 36s against the previous day)\n"
        "Slowest jobs: CI / build &lt;!channel&gt; &amp; co 3m 40s · CI / lint 1m 0s\n"
        "Incidents: 1 opened, 1 resolved · flaky failures: 1"
    ) in texts
    assert "<!channel>" not in texts


def test_digest_many_repos_summarised() -> None:
    figures = [
        RepoFigures(
            repo=f"octo-org/repo-{index:03d}",
            runs=10,
            failed=1,
            succeeded=9,
            build_time={"p50": 300.0, "p95": 600.0},
            previous_build_time={"p50": 240.0, "p95": 500.0},
            slowest_jobs=[SlowJob(workflow="CI <b>", name="job " + "x" * 200, duration_s=90.0)] * 3,
        )
        for index in range(300)
    ]
    view = DigestView(
        frequency="weekly",
        since=datetime(2024, 5, 27, tzinfo=UTC),
        until=datetime(2024, 6, 3, tzinfo=UTC),
        repos=figures[:250],
        more_repos=50,
    )

    message = render_digest(view)

    assert len(message.blocks) <= MAX_MESSAGE_BLOCKS
    assert text_size(message.blocks) <= MAX_MESSAGE_TEXT
    assert message.text == "Weekly digest · 2024-05-27 to 2024-06-02"
    last = message.blocks[-1]["text"]["text"]
    shown = sum(
        block["text"]["text"].count("*<https://github.com/")
        for block in message.blocks
        if "text" in block and block["type"] == "section"
    )
    assert last.endswith(f"_and {300 - shown} more repositories_")
    assert "CI &lt;b&gt; / job" in all_text({"blocks": message.blocks})


def test_due_window_daily_and_weekly() -> None:
    monday = datetime(2024, 6, 3, 9, 0, 30, tzinfo=UTC)

    daily = due_window("daily", monday, "09:00")
    weekly = due_window("weekly", monday, "09:00")
    sunday = due_window("weekly", datetime(2024, 6, 9, 23, 0, tzinfo=UTC), "09:00")
    monday_early = due_window("weekly", datetime(2024, 6, 10, 8, 59, tzinfo=UTC), "09:00")

    assert daily is not None
    assert (daily.period, daily.since, daily.until) == (
        "daily:2024-06-03",
        datetime(2024, 6, 2, tzinfo=UTC),
        datetime(2024, 6, 3, tzinfo=UTC),
    )
    assert daily.previous_since == datetime(2024, 6, 1, tzinfo=UTC)
    assert weekly is not None
    assert (weekly.period, weekly.since, weekly.until) == (
        "weekly:2024-W23",
        datetime(2024, 5, 27, tzinfo=UTC),
        datetime(2024, 6, 3, tzinfo=UTC),
    )
    assert sunday is not None
    assert sunday.period == "weekly:2024-W23"
    assert monday_early is None
    assert due_window("daily", datetime(2024, 6, 3, 8, 59, tzinfo=UTC), "09:00") is None


def digest_differences(database_url: str) -> list[str]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    return [str(difference) for difference in differences if "'channel_digest'" in str(difference)]


def test_digest_migration_matches_model(database_url: str) -> None:
    assert digest_differences(database_url) == []


def test_digest_migration_downgrade_then_upgrade(database_url: str) -> None:
    downgrade_database(database_url, "0009@0001")
    engine = create_db_engine(database_url)
    try:
        assert "channel_digest" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    upgrade_database(database_url)
    assert digest_differences(database_url) == []


def test_digest_rejected_channel_fails_once(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.ask("subscribe octo-org/widget <#C0OTHER001|random>")
    schedule(alerts, "digest daily <#C0OTHER001|random>")
    alerts.fake.channel_errors["C0OTHER001"] = "channel_not_found"
    assert alerts.clock is not None
    alerts.clock.current = DUE

    queued = queue_due_digests(alerts.engine, bot_settings(alerts), now=DUE)
    alerts.deliver()
    again = queue_due_digests(alerts.engine, bot_settings(alerts), now=DUE + timedelta(minutes=1))

    assert queued == 1
    assert again == 0
    [message] = alerts.outbox("slack_digest")
    assert message.status == "failed"
    assert message.last_error == "Slack returned channel_not_found for channel C0OTHER001"
    assert digest_posts(alerts, "C0OTHER001") == []
