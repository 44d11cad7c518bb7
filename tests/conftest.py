"""Shared fixtures: a migrated database (SQLite, or PostgreSQL from TEST_DATABASE_URL), the real
app behind a test client, and helpers that sign and send webhooks as GitHub does."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from bot.app import create_app
from bot.config import Settings, load_settings
from storage.db import upgrade_database

WEBHOOK_SECRET = "test-webhook-secret"
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


def postgres_required() -> pytest.MarkDecorator:
    """Skip a test unless TEST_DATABASE_URL names a PostgreSQL server."""
    return pytest.mark.skipif(
        not (POSTGRES_URL or "").startswith("postgresql"),
        reason="needs PostgreSQL: set TEST_DATABASE_URL=postgresql+psycopg://USER@HOST/DB",
    )


def create_postgres_database(base_url: str, name: str) -> str:
    """Create an empty database on the server of `base_url`; return its URL."""
    admin = create_engine(make_url(base_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_postgres_url() -> Iterator[str | None]:
    """A migrated PostgreSQL database that each test copies, or None on SQLite."""
    if not POSTGRES_URL:
        yield None
        return
    name = f"release_bot_template_{os.getpid()}"
    url = create_postgres_database(POSTGRES_URL, name)
    upgrade_database(url)
    yield url
    admin = create_engine(make_url(POSTGRES_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path, template_postgres_url: str | None) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if template_postgres_url is None:
        url = f"sqlite:///{tmp_path / 'bot.db'}"
        upgrade_database(url)
        yield url
        return
    name = f"release_bot_test_{uuid.uuid4().hex[:12]}"
    template = make_url(template_postgres_url).database
    admin = create_engine(make_url(template_postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield make_url(template_postgres_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for a test bot: the test database and a known webhook secret."""
    return load_settings(
        _env_file=None,
        database_url=database_url,
        github_webhook_secret=WEBHOOK_SECRET,
        worker_poll_seconds=0.05,
    )


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """Return the X-Hub-Signature-256 header GitHub would send for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class BotClient:
    """The running app with helpers to send signed webhooks and read the database."""

    client: TestClient

    @property
    def app(self) -> Any:
        return self.client.app

    def send(
        self,
        event: str,
        payload: dict[str, Any] | bytes,
        *,
        delivery_id: str | None = None,
        secret: str = WEBHOOK_SECRET,
        headers: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Any:
        """Sign and POST a webhook like GitHub, then wait until the worker has processed it."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        all_headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/test",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(body, secret),
            **(headers or {}),
        }
        response = self.client.post("/github/webhooks", content=body, headers=all_headers)
        if wait:
            self.wait_idle()
        return response

    def wait_idle(self) -> None:
        """Wait until the worker has processed every pending delivery."""
        assert self.app.state.worker.wait_idle(timeout=15), "worker did not finish in 15 s"

    def session(self) -> Session:
        return Session(self.app.state.engine, expire_on_commit=False)


@pytest.fixture
def bot(settings: Settings) -> Iterator[BotClient]:
    """The real app, started with its lifespan (migrations, worker) behind a test client."""
    app = create_app(settings)
    with TestClient(app) as client:
        yield BotClient(client)
