"""Fixtures for the Python API tests: an engine on the test database, and the test database as
the configured DATABASE_URL for code that reads the settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.config import get_settings
from bot.engines import dispose_engines
from storage.db import create_db_engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh, migrated test database."""
    created = create_db_engine(database_url)
    yield created
    created.dispose()


@pytest.fixture
def configured_database(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Make the test database the one `get_settings()` names, as a CI job's environment would.

    The working directory moves to an empty folder so that no `.env` file is read.
    """
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()
    dispose_engines()
