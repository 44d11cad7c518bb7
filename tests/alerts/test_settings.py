"""Alert settings: the incident key, configured user mappings, and invalid values that stop the
bot at start with the variable's name."""

from __future__ import annotations

import pytest

from bot.alert_settings import (
    check_alert_settings,
    configured_users,
    incident_key_fields,
    repeat_interval,
)
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.scheduler import Scheduler
from tests.alerts import payloads
from tests.alerts.conftest import AlertDriver, AlertSlack
from tests.conftest import WEBHOOK_SECRET
from tests.slack.conftest import SIGNING_SECRET, all_text
from tests.slack.fake_slack import BOT_TOKEN


@pytest.fixture
def settings(database_url: str, fake_slack: AlertSlack) -> Settings:
    """Incidents keyed by repository and workflow only, and a configured user mapping."""
    return load_settings(
        _env_file=None,
        database_url=database_url,
        github_webhook_secret=WEBHOOK_SECRET,
        worker_poll_seconds=0.05,
        scheduler_enabled=False,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url,
        alert_incident_key="repo, workflow",
        alert_slack_users="Dev-User=U0CONFIG01,other=W0OTHER001",
    )


def test_key_without_branch_joins_branches(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(35001, branch="main"))
    alerts.settle()
    alerts.bot.send("workflow_run", payloads.run(35002, branch="develop", sha="e" * 40))
    alerts.settle()
    assert len(alerts.fake.posts()) == 1
    [reply] = alerts.fake.replies()
    assert "develop" in all_text(reply)
    assert [incident.failure_count for incident in alerts.incidents()] == [2]


def test_configured_mapping_mentions_without_lookup(alerts: AlertDriver) -> None:
    alerts.subscribe()
    alerts.bot.send("workflow_run", payloads.run(35101))
    alerts.settle()
    [post] = alerts.fake.posts()
    assert "*Triggered by*\n<@U0CONFIG01> (dev-user)" in all_text(post)
    assert alerts.fake.calls_of("users.lookupByEmail") == []


def test_settings_parsed() -> None:
    settings = load_settings(
        _env_file=None, alert_incident_key="branch,repo", alert_slack_users=" a=U01AB , b-c=W0123 "
    )
    assert incident_key_fields(settings) == ("repo", "branch")
    assert configured_users(settings) == {"a": "U01AB", "b-c": "W0123"}
    assert repeat_interval(load_settings(_env_file=None, alert_repeat_hours=0)) is None


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"alert_incident_key": "workflow,branch"}, "ALERT_INCIDENT_KEY"),
        ({"alert_incident_key": "repo,sha"}, "ALERT_INCIDENT_KEY"),
        ({"alert_slack_users": "dev-user"}, "ALERT_SLACK_USERS"),
        ({"alert_slack_users": "dev-user=not-an-id"}, "ALERT_SLACK_USERS"),
    ],
)
def test_invalid_settings_name_variable(overrides: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_alert_settings(load_settings(_env_file=None, **overrides))
    assert str(raised.value).startswith(f"{variable} is invalid:")


def test_negative_repeat_hours_rejected() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None, alert_repeat_hours=-1)
    assert "ALERT_REPEAT_HOURS is invalid" in str(raised.value)


def test_reminder_job_scheduled(settings: Settings) -> None:
    assert "alert_reminders" in Scheduler(None, settings).jobs  # type: ignore[arg-type]
    off = settings.model_copy(update={"alert_repeat_hours": 0.0})
    assert "alert_reminders" not in Scheduler(None, off).jobs  # type: ignore[arg-type]
