"""What alerts and where it goes: release stages and severity, routing rules with include and
exclude globs, cancelled runs, the repository file's channel, and failed deployments."""

from __future__ import annotations

from storage import alert_rules, github_app
from storage.db import session_scope
from storage.models_alerts import AlertRoute
from tests.alerts import payloads
from tests.alerts.conftest import ALERT_CHANNEL, AlertDriver
from tests.slack.conftest import all_text
from tests.slack.fake_slack import TEAM_ID

OTHER_CHANNEL = "C0OTHER001"


def add_route(alerts: AlertDriver, **fields: object) -> None:
    with session_scope(alerts.engine) as session:
        alert_rules.add_route(
            session=session, route=AlertRoute(team_id=TEAM_ID, channel_id=OTHER_CHANNEL, **fields)
        )


def test_critical_publish_routed_by_severity(alerts: AlertDriver) -> None:
    alerts.install_widget_repos("widget")
    add_route(alerts, repos="octo-org/*", min_severity="critical")

    alerts.bot.send("workflow_run", payloads.run(34001, name="Publish", branch="main"))
    alerts.bot.send("workflow_run", payloads.run(34002, name="Publish", branch="feature/x"))
    alerts.bot.send("workflow_run", payloads.run(34003, name="CI", branch="main"))
    alerts.settle()

    [post] = alerts.fake.posts(OTHER_CHANNEL)
    assert ":rotating_light: Publish failed in octo-org/widget" in all_text(post)
    assert "*Severity*\ncritical" in all_text(post)
    severities = {
        (failure.workflow, failure.branch): failure.severity for failure in alerts.failures()
    }
    assert severities == {("Publish", "main"): "critical", ("Publish", "feature/x"): "error"}


def test_tag_run_is_critical_release(alerts: AlertDriver) -> None:
    alerts.install_widget_repos("widget")
    add_route(alerts, min_severity="critical")
    alerts.bot.send("workflow_run", payloads.run(34101, name="Build", branch="v1.4.0"))
    alerts.settle()
    [post] = alerts.fake.posts(OTHER_CHANNEL)
    text = all_text(post)
    assert "*Tag*\n<https://github.com/octo-org/widget/tree/v1.4.0|v1.4.0>" in text
    assert "*Version*\n`v1.4.0`" in text


def test_route_globs_include_and_exclude(alerts: AlertDriver) -> None:
    alerts.install_widget_repos("widget")
    add_route(alerts, workflows="CI, Nightly*", exclude_branches="dependabot/*")
    alerts.bot.send("workflow_run", payloads.run(34201, name="CI", branch="main"))
    alerts.bot.send(
        "workflow_run", payloads.run(34202, name="CI", branch="dependabot/pip/requests")
    )
    alerts.bot.send("workflow_run", payloads.run(34203, name="Nightly build", branch="main"))
    alerts.bot.send("workflow_run", payloads.run(34204, name="Docs", branch="main"))
    alerts.settle()
    posts = alerts.fake.posts(OTHER_CHANNEL)
    assert sorted(all_text(post).split("\n")[0] for post in posts) == [
        "CI failure in octo-org/widget on main",
        "Nightly build failure in octo-org/widget on main",
    ]


def test_route_severity_override(alerts: AlertDriver) -> None:
    alerts.install_widget_repos("widget")
    add_route(alerts, workflows="CI", severity="critical", min_severity="critical")
    alerts.bot.send("workflow_run", payloads.run(34301, name="CI", branch="feature/y"))
    alerts.settle()
    [post] = alerts.fake.posts(OTHER_CHANNEL)
    assert "*Severity*\ncritical" in all_text(post)


def test_cancelled_only_when_configured(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(34401, conclusion="cancelled"))
    alerts.settle()
    assert alerts.fake.posts() == []

    add_route(alerts, workflows="CI", include_cancelled=True)
    alerts.bot.send("workflow_run", payloads.run(34402, conclusion="cancelled", sha="e" * 40))
    alerts.settle()
    assert alerts.fake.posts(ALERT_CHANNEL) == []
    [post] = alerts.fake.posts(OTHER_CHANNEL)
    assert "CI cancelled in octo-org/widget" in all_text(post)


def test_timed_out_and_startup_failure_alert(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(34501, name="A", conclusion="timed_out"))
    alerts.bot.send("workflow_run", payloads.run(34502, name="B", conclusion="startup_failure"))
    alerts.bot.send("workflow_run", payloads.run(34503, name="C", conclusion="skipped"))
    alerts.bot.send("workflow_run", payloads.run(34504, name="D", conclusion="action_required"))
    alerts.settle()
    assert len(alerts.fake.posts()) == 2


def test_subscription_filters_are_globs(alerts: AlertDriver) -> None:
    alerts.subscribe(
        'subscribe octo-org/widget --events failures --workflow "Release*" --branch main'
    )
    alerts.bot.send("workflow_run", payloads.run(34601, name="Release build", branch="main"))
    alerts.bot.send("workflow_run", payloads.run(34602, name="CI", branch="main"))
    alerts.bot.send("workflow_run", payloads.run(34603, name="Release build", branch="develop"))
    alerts.settle()
    [post] = alerts.fake.posts()
    assert "Release build failed in octo-org/widget" in all_text(post)


def test_publishes_only_subscription_gets_no_failures(alerts: AlertDriver) -> None:
    alerts.subscribe("subscribe octo-org/widget --events publishes")
    alerts.bot.send("workflow_run", payloads.run(34701, name="CI"))
    alerts.settle()
    assert alerts.fake.posts() == []
    assert alerts.failures() == []


def test_repository_file_channel_for_releases(alerts: AlertDriver) -> None:
    alerts.subscribe("subscribe octo-org/widget --events publishes")
    with session_scope(alerts.engine) as session:
        github_app.store_repo_config(
            session=session,
            repo="octo-org/widget",
            installation_id=payloads.INSTALLATION_ID,
            source="file",
            config={
                "version": 1,
                "alerts": {
                    "slack_channel": OTHER_CHANNEL,
                    "mentions": ["U0LEAD0001", "S0TEAM0001", "ops-bot"],
                    "notify_on": ["failure"],
                },
            },
            blob_sha="abc",
        )
    alerts.bot.send("workflow_run", payloads.run(34801, name="Publish"))
    alerts.bot.send("workflow_run", payloads.run(34802, name="CI"))
    alerts.settle()
    [post] = alerts.fake.posts(OTHER_CHANNEL)
    text = all_text(post)
    assert "Publish failed in octo-org/widget" in text
    assert "cc <@U0LEAD0001> <!subteam^S0TEAM0001> @ops-bot" in text


def test_failed_deployment_opens_and_resolves(alerts: AlertDriver) -> None:
    alerts.subscribe("subscribe octo-org/widget --events deployments")
    alerts.bot.send("deployment_status", payloads.deployment_status(9001, 1, state="failure"))
    alerts.settle()
    [post] = alerts.fake.posts()
    text = all_text(post)
    assert ":rotating_light: Deployment to production failed in octo-org/widget" in text
    assert "*Description*\nDeploy failed: health check" in text
    assert "<https://github.com/octo-org/widget/deployments/9001/log|open the log>" in text

    alerts.bot.send(
        "deployment_status",
        payloads.deployment_status(9002, 2, state="success", at="2024-06-03T10:30:00Z"),
    )
    alerts.settle()
    [update] = alerts.fake.updates()
    assert "Resolved: Deployment to production failed in octo-org/widget" in all_text(update)
    assert "after 20m 0s (time to recover)" in all_text(update)
    assert [incident.status for incident in alerts.incidents()] == ["resolved"]
