"""`release-bot webhook-secret show` and `rotate`: the generated secret stored in the database,
printed again or replaced, and a bot started afterwards verifying deliveries with the new one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bot.app import create_app
from bot.cli import app
from bot.config import load_settings
from bot.secrets import resolve_webhook_secret
from storage.db import create_db_engine, session_scope
from storage.state import WEBHOOK_SECRET_KEY, get_value
from tests.cli_support import isolate_settings, restored_logging
from tests.conftest import BotClient

SECRET_LINE = re.compile(r"Webhook secret: (\S+)")
PUBLIC_URL_NOTE = "PUBLIC_URL is not set, so this URL is the address the bot listens on"


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CLI runs on the test database, from an empty directory with no other setting."""
    isolate_settings(monkeypatch, tmp_path, DATABASE_URL=database_url)
    with restored_logging():
        yield


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def generate_secret(database_url: str) -> str:
    """Generate and store a secret as `release-bot serve` does at its first start."""
    engine = create_db_engine(database_url)
    try:
        secret, generated = resolve_webhook_secret(load_settings(_env_file=None, database_url=database_url), engine)
    finally:
        engine.dispose()
    assert generated
    return secret


def stored_secret(database_url: str) -> str | None:
    engine = create_db_engine(database_url)
    try:
        with session_scope(engine) as session:
            return get_value(session=session, key=WEBHOOK_SECRET_KEY)
    finally:
        engine.dispose()


def test_show_prints_stored_secret(cli: None, database_url: str) -> None:
    secret = generate_secret(database_url)

    result = invoke("webhook-secret", "show")

    assert result.exit_code == 0, result.output
    assert SECRET_LINE.findall(result.stdout) == [secret]
    assert "Webhook URL:    http://127.0.0.1:8000/github/webhooks" in result.stdout
    assert PUBLIC_URL_NOTE in result.stdout


def test_show_uses_public_url(cli: None, database_url: str) -> None:
    generate_secret(database_url)

    result = invoke("webhook-secret", "show", env={"PUBLIC_URL": "https://bot.example.com"})

    assert result.exit_code == 0, result.output
    assert "Webhook URL:    https://bot.example.com/github/webhooks" in result.stdout
    assert "PUBLIC_URL is not set" not in result.stdout


def test_show_without_stored_secret(cli: None, database_url: str) -> None:
    result = invoke("webhook-secret", "show")

    assert result.exit_code == 1
    assert "no webhook secret is stored in" in result.stderr
    assert "`release-bot serve` generates one at its first start" in result.stderr


def test_show_with_configured_secret(cli: None, database_url: str) -> None:
    stored = generate_secret(database_url)

    result = invoke("webhook-secret", "show", env={"GITHUB_WEBHOOK_SECRET": "configured-secret-value"})

    assert result.exit_code == 1
    assert "GITHUB_WEBHOOK_SECRET is set, so the bot verifies deliveries with that value" in result.stderr
    assert "configured-secret-value" not in result.output
    assert stored not in result.output


def test_rotate_replaces_secret(cli: None, database_url: str) -> None:
    old = generate_secret(database_url)

    result = invoke("webhook-secret", "rotate")

    assert result.exit_code == 0, result.output
    printed = SECRET_LINE.findall(result.stdout)
    assert len(printed) == 1
    new = printed[0]
    assert len(new) == 64
    assert new != old
    assert stored_secret(database_url) == new
    assert "stored it in its database, replacing the old one" in result.stdout
    assert "The GitHub App needs this new value" in result.stdout
    assert "restart every release-bot serve" in result.stdout
    assert old not in result.output


def test_rotated_secret_verifies_deliveries(cli: None, database_url: str) -> None:
    old = generate_secret(database_url)
    rotated = invoke("webhook-secret", "rotate")
    new = SECRET_LINE.findall(rotated.stdout)[0]
    # No GITHUB_WEBHOOK_SECRET: the bot reads the stored secret at start, as after a restart.
    settings = load_settings(_env_file=None, database_url=database_url, worker_poll_seconds=0.05)
    payload = {"action": "completed", "workflow_run": {"id": 1, "name": "CI", "run_attempt": 1}}

    with TestClient(create_app(settings)) as client:
        bot = BotClient(client)
        with_new = bot.send("workflow_run", payload, delivery_id="rotated-1", secret=new)
        with_old = bot.send("workflow_run", payload, delivery_id="rotated-2", secret=old)

    assert with_new.status_code == 202
    assert with_old.status_code == 401


def test_rotate_without_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_settings(monkeypatch, tmp_path)
    with restored_logging():
        result = invoke("webhook-secret", "rotate")

    assert result.exit_code == 1
    assert f"no database at {tmp_path / 'release-bot.db'}" in result.stderr
    assert not (tmp_path / "release-bot.db").exists()


def test_rotate_with_configured_secret(cli: None, database_url: str) -> None:
    stored = generate_secret(database_url)

    result = invoke("webhook-secret", "rotate", env={"GITHUB_WEBHOOK_SECRET": "configured-secret-value"})

    assert result.exit_code == 1
    assert "set a new value there and in the GitHub App, or unset it" in result.stderr
    assert stored_secret(database_url) == stored
