"""slack-manifest.yml matches what the bot serves: command, scopes, request URLs and events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.slack_app import BOT_SCOPES, COMMAND

MANIFEST = Path(__file__).resolve().parents[2] / "slack-manifest.yml"


def load_manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def test_manifest_scopes_match_oauth() -> None:
    assert load_manifest()["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)


def test_manifest_command_escaped() -> None:
    [command] = load_manifest()["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert command["should_escape"] is True
    assert command["url"].endswith("/slack/events")


def test_manifest_urls_point_at_bot() -> None:
    manifest = load_manifest()
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["request_url"].endswith("/slack/events")
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"].endswith("/slack/events")
    assert manifest["oauth_config"]["redirect_urls"][0].endswith("/slack/oauth_redirect")
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True


def test_manifest_events_have_listeners() -> None:
    events = load_manifest()["settings"]["event_subscriptions"]["bot_events"]
    assert events == ["app_home_opened", "app_uninstalled", "tokens_revoked"]
