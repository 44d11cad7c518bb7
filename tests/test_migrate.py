"""Migrations at server start: the head check without Alembic, and the child process that migrates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from bot import migrate
from bot.config import Settings, load_settings
from storage.db import alembic_config, create_db_engine
from tests.conftest import WEBHOOK_SECRET


def fresh_settings(database_url: str) -> Settings:
    return load_settings(_env_file=None, database_url=database_url, github_webhook_secret=WEBHOOK_SECRET)


def test_heads_match_alembic() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))

    assert migrate.migration_heads() == frozenset(script.get_heads())


def test_heads_unknown_for_computed_revision(tmp_path: Path) -> None:
    (tmp_path / "0001_first.py").write_text('revision = "0001"\ndown_revision = None\n')
    (tmp_path / "0002_second.py").write_text('revision = make_id()\ndown_revision = "0001"\n')

    assert migrate.migration_heads(tmp_path) is None


def test_heads_of_merged_branches(tmp_path: Path) -> None:
    (tmp_path / "0001_first.py").write_text('revision = "0001"\ndown_revision = None\n')
    (tmp_path / "0002_left.py").write_text('revision: str = "0002"\ndown_revision: str | None = "0001"\n')
    (tmp_path / "0003_right.py").write_text('revision = "0003"\ndown_revision = "0001"\n')
    assert migrate.migration_heads(tmp_path) == {"0002", "0003"}

    (tmp_path / "0004_merge.py").write_text('revision = "0004"\ndown_revision = ("0002", "0003")\n')
    assert migrate.migration_heads(tmp_path) == {"0004"}


def test_fresh_database_migrated_in_child(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert not migrate.is_schema_current(database_url)

    migrate.upgrade_at_start(fresh_settings(database_url))

    assert migrate.is_schema_current(database_url)


def test_current_database_starts_no_child(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_child(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a child process was started: {args!r}")

    monkeypatch.setattr(migrate.subprocess, "run", no_child)

    migrate.upgrade_at_start(settings)


def test_child_failure_raises(database_url: str) -> None:
    engine = create_db_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    with pytest.raises(migrate.MigrationError, match="exited with status 1"):
        migrate.upgrade_at_start(fresh_settings(database_url))


def test_in_memory_urls_detected() -> None:
    assert migrate.is_in_memory("sqlite://")
    assert migrate.is_in_memory("sqlite:///:memory:")
    assert not migrate.is_in_memory("sqlite:///bot.db")
    assert not migrate.is_in_memory("postgresql+psycopg://bot@localhost/bot")
