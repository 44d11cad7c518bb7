"""Fixtures for the backfill tests: the fake GitHub with Actions routes, a fake clock, and the
`release-bot backfill` command run with the App's settings against the test database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot import backfill
from bot.cli import app
from bot.config import Settings
from bot.github_client import GitHubApp
from tests.backfill.fake_actions import FakeActions
from tests.cli_support import isolate_settings, restored_logging
from tests.github_app import conftest as github_app_fixtures
from tests.github_app.conftest import API_URL, APP_ID, AppKey

# The session's App key pair, shared with the GitHub App tests: pytest finds the fixture by
# this module attribute's name.
app_key = github_app_fixtures.app_key

# Any fixed moment works; the fake clock starts here and moves only when the backfill sleeps.
CLOCK_START = 1_764_000_000.0


@dataclass
class FakeClock:
    """A clock that moves only when the backfill sleeps; `sleeps` lists each wait in seconds."""

    now: float = CLOCK_START
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


@pytest.fixture
def fake_actions(app_key: AppKey) -> Iterator[FakeActions]:
    """The fake GitHub API; the test fails if it received a request it did not plan."""
    fake = FakeActions(app_id=APP_ID, public_key=app_key.public_pem)
    yield fake
    assert not fake.unplanned, f"unplanned GitHub requests: {fake.unplanned}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def run_backfill(
    database_url: str,
    app_key: AppKey,
    fake_actions: FakeActions,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Any]]:
    """Run `release-bot backfill ARGS` with GitHub App settings, the fake GitHub and the fake clock."""
    isolate_settings(
        monkeypatch,
        tmp_path,
        DATABASE_URL=database_url,
        GITHUB_APP_ID=str(APP_ID),
        GITHUB_PRIVATE_KEY=app_key.private_pem,
        GITHUB_API_URL=API_URL,
        COLUMNS="160",
    )

    def open_fake_app(settings: Settings, pacing: backfill.Pacing) -> GitHubApp | None:
        return GitHubApp.from_settings(settings, transport=fake_actions.transport, clock=pacing.clock)

    monkeypatch.setattr(backfill, "open_github_app", open_fake_app)
    real_pacing = backfill.Pacing
    monkeypatch.setattr(backfill, "Pacing", lambda: real_pacing(sleep=clock.sleep, clock=clock.time))

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(app, ["backfill", *args])

    with restored_logging():
        yield invoke
