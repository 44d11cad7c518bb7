"""The alert settings, parsed and checked: ALERT_INCIDENT_KEY, ALERT_REPEAT_HOURS and
ALERT_SLACK_USERS. An invalid value raises ConfigError naming the variable and the fix."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.config import Settings
from bot.errors import ConfigError
from storage.incidents import KEY_FIELDS

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")
# GitHub logins: letters, digits and single hyphens, at most 39 characters; bots end in [bot].
GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?$")


def incident_key_fields(settings: Settings) -> tuple[str, ...]:
    """Return the fields that make an incident's key, in a fixed order; `repo` is always one."""
    names = [
        part.strip().lower() for part in settings.alert_incident_key.split(",") if part.strip()
    ]
    unknown = sorted(set(names) - set(KEY_FIELDS))
    if unknown or "repo" not in names:
        raise ConfigError(
            f"ALERT_INCIDENT_KEY is invalid: {settings.alert_incident_key!r}; use a comma-separated list of "
            "repo, workflow and branch that includes repo, such as repo,workflow,branch."
        )
    return tuple(name for name in KEY_FIELDS if name in names)


def repeat_interval(settings: Settings) -> timedelta | None:
    """Return the time between reminders of a still-failing incident, or None when they are off."""
    if settings.alert_repeat_hours <= 0:
        return None
    return timedelta(hours=settings.alert_repeat_hours)


def configured_users(settings: Settings) -> dict[str, str]:
    """Parse ALERT_SLACK_USERS (`login=U0123ABCD,login2=U0456EFGH`) into lower-case login -> Slack user id."""
    users: dict[str, str] = {}
    for pair in (part.strip() for part in settings.alert_slack_users.split(",")):
        if not pair:
            continue
        login, _, user_id = (piece.strip() for piece in pair.partition("="))
        if not GITHUB_LOGIN.match(login) or not SLACK_USER_ID.match(user_id):
            raise ConfigError(
                f"ALERT_SLACK_USERS is invalid: {pair!r} is not a GITHUB_LOGIN=SLACK_USER_ID pair; "
                "use pairs such as dev-user=U0123ABCD separated by commas."
            )
        users[login.lower()] = user_id
    return users


def check_alert_settings(settings: Settings) -> None:
    """Raise ConfigError if an alert setting is invalid; called once at start."""
    incident_key_fields(settings)
    configured_users(settings)
