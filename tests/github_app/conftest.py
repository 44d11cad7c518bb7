"""Fixtures for the GitHub App tests: a real RSA App key, the fake GitHub API behind
httpx.MockTransport, and the real app whose outbox is driven by the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlmodel import Session

from bot import outbox as outbox_sender
from bot import pr_comment
from bot.app import create_app
from bot.config import Settings, load_settings
from bot.github_client import GitHubApp
from storage.db import session_scope
from storage.outbox import OutboxMessage, OutboxStatus, TargetThrottle
from storage.types import utc_now
from tests.conftest import WEBHOOK_SECRET, BotClient
from tests.github_app.fake_github import API_PREFIX, FakeGitHub

FIXTURES = Path(__file__).parent / "fixtures"
APP_ID = 4242
# Never contacted: httpx.MockTransport handles every request in these tests.
API_URL = f"http://127.0.0.1:9{API_PREFIX}"


@dataclass(frozen=True)
class AppKey:
    """An RSA key pair in PEM, as GitHub issues for an App."""

    private_pem: str
    public_pem: str


@pytest.fixture(scope="session")
def app_key() -> AppKey:
    """A real 2048-bit RSA key, generated once per test session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return AppKey(private_pem, public_pem)


@pytest.fixture
def fake_github(app_key: AppKey) -> Iterator[FakeGitHub]:
    """The fake GitHub API; the test fails if it received a request it did not plan."""
    fake = FakeGitHub(app_id=APP_ID, public_key=app_key.public_pem)
    yield fake
    assert not fake.unplanned, f"unplanned GitHub requests: {fake.unplanned}"


@pytest.fixture
def app_settings(database_url: str, app_key: AppKey) -> Settings:
    """Settings with a GitHub App (a GitHub Enterprise Server style API URL) and no scheduler."""
    return load_settings(
        _env_file=None,
        database_url=database_url,
        github_webhook_secret=WEBHOOK_SECRET,
        worker_poll_seconds=0.05,
        github_app_id=APP_ID,
        github_private_key=app_key.private_pem,
        github_api_url=API_URL,
        scheduler_enabled=False,
    )


@dataclass
class AppBot(BotClient):
    """The running app, the fake GitHub it calls, and control over its outbox."""

    github: FakeGitHub | None = None
    engine: Engine | None = None

    def deliver(self, rounds: int = 10) -> int:
        """Send every due outbox message, including those queued by other senders; return the count."""
        assert self.engine is not None
        total = 0
        for _ in range(rounds):
            claimed = outbox_sender.deliver_due(self.engine)
            total += claimed
            if claimed == 0:
                break
        return total

    def make_due(self) -> None:
        """Make every waiting message due now and lift throttles, as if their wait had passed."""
        assert self.engine is not None
        with session_scope(self.engine) as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.PENDING.value)
                .values(next_attempt_at=utc_now() - timedelta(seconds=1))
            )
            session.execute(update(TargetThrottle).values(until=utc_now() - timedelta(seconds=1)))

    def messages(self, kind: str | None = None) -> list[OutboxMessage]:
        """Return the outbox messages, oldest first."""
        with Session(self.engine) as session:
            statement = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
            if kind is not None:
                statement = statement.where(OutboxMessage.kind == kind)
            return list(session.scalars(statement).all())


@pytest.fixture
def app_bot(app_settings: Settings, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppBot]:
    """The real app with a GitHub App; the outbox sends only when the test calls `deliver`."""
    monkeypatch.setattr(pr_comment, "SETTLE_SECONDS", 0.0)
    app = create_app(app_settings)
    with TestClient(app) as client:
        app.state.outbox_worker.stop()
        engine = app.state.engine
        github = GitHubApp.from_settings(app_settings, transport=fake_github.transport)
        assert github is not None
        for kind, sender in pr_comment.github_senders(engine, github).items():
            monkeypatch.setitem(outbox_sender.SENDERS, kind, sender)
        yield AppBot(client=client, github=fake_github, engine=engine)


def load_steps(name: str) -> list[dict[str, Any]]:
    """Return the webhook steps (`event`, `delivery_id`, `payload`) of a fixture file."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
