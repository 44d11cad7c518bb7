"""Migrations on a database that contains rows: the oldest product fills it, the current one upgrades.

The "old product" is this repository at the oldest commit that contains a migration, extracted
with `git archive` and run with the current environment. It migrates an empty database and
stores runs and jobs through its real webhook endpoint; the current code then upgrades to every
head, upgrades again (a no-op), downgrades to the first revision and upgrades again. The rows
must survive, every constraint must have a name, and `alembic check` must find no difference
between the models and the schema.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from bot.app import create_app
from bot.config import load_settings
from storage.db import alembic_config, downgrade_database, upgrade_database
from tests.conftest import POSTGRES_URL, WEBHOOK_SECRET, create_postgres_database, sign
from tests.ops.test_replicas import free_port, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRST_MIGRATION = "storage/migrations/versions/0001_initial_schema.py"
REPOSITORY = {"id": 1001, "name": "widget", "full_name": "octo-org/widget", "private": False,
              "owner": {"login": "octo-org", "id": 5001, "type": "Organization"}, "default_branch": "main"}
RUNS = {30034: ("09", "failure"), 30035: ("10", "success"), 30036: ("11", "success")}


def run_delivery(run_id: int) -> dict[str, Any]:
    hour, conclusion = RUNS[run_id]
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id, "name": "CI", "display_title": "Update parser", "path": ".github/workflows/ci.yml",
            "workflow_id": 777, "run_number": 100, "run_attempt": 1, "event": "push", "status": "completed",
            "conclusion": conclusion, "head_branch": "main", "head_sha": str(run_id % 100) * 20,
            "created_at": f"2024-06-03T{hour}:00:00Z", "run_started_at": f"2024-06-03T{hour}:00:00Z",
            "updated_at": f"2024-06-03T{hour}:05:12Z", "pull_requests": [], "repository": REPOSITORY,
            "head_repository": REPOSITORY, "actor": {"login": "dev-user", "id": 7001, "type": "User"},
        },
        "workflow": {"id": 777, "name": "CI", "path": ".github/workflows/ci.yml"},
        "repository": REPOSITORY,
        "installation": {"id": 424242},
    }


def job_delivery(index: int) -> dict[str, Any]:
    """Jobs 1..6: two per run, `build` (312 s) for odd and `lint` (60 s) for even indexes."""
    run_id = 30034 + (index - 1) // 2
    hour, conclusion = RUNS[run_id]
    build = index % 2 == 1
    return {
        "action": "completed",
        "workflow_job": {
            "id": 3403400 + index, "run_id": run_id, "run_attempt": 1, "workflow_name": "CI",
            "name": "build" if build else "lint", "head_branch": "main", "status": "completed",
            "conclusion": conclusion, "created_at": f"2024-06-03T{hour}:00:00Z",
            "started_at": f"2024-06-03T{hour}:00:00Z",
            "completed_at": f"2024-06-03T{hour}:05:12Z" if build else f"2024-06-03T{hour}:01:00Z",
            "labels": ["ubuntu-latest"], "steps": [],
        },
        "repository": REPOSITORY,
        "installation": {"id": 424242},
    }


def oldest_migration_commit() -> str:
    """Return the oldest commit that added the first migration, or skip without git history."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed, so the oldest product cannot be extracted")
    result = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "log", "--diff-filter=A", "--format=%H", "--", FIRST_MIGRATION],
        capture_output=True, text=True, check=False,
    )
    commits = result.stdout.split()
    if result.returncode != 0 or not commits:
        pytest.skip(f"no git history for {FIRST_MIGRATION}: {result.stderr.strip()}")
    return commits[-1]


def extract_old_product(target: Path) -> Path:
    commit = oldest_migration_commit()
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def old_product_env(database_url: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url, "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET}


def run_old_cli(old: Path, database_url: str, *args: str) -> None:
    # Run from the extracted tree so its packages shadow the installed current ones.
    command_line = [sys.executable, "-c", "from bot.cli import main; main()", *args]
    result = subprocess.run(command_line, cwd=old, env=old_product_env(database_url), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def fill_with_old_product(old: Path, database_url: str, tmp_path: Path) -> None:
    """Start the old product, send the runs and jobs through its webhook endpoint, stop it."""
    port = free_port()
    log = (tmp_path / "old-bot.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=old, env=old_product_env(database_url), stdout=subprocess.DEVNULL, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "old-bot.log").read_text()[-3000:]
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, "the old product to start")
        deliveries = [("workflow_run", run_delivery(run_id)) for run_id in RUNS]
        deliveries += [("workflow_job", job_delivery(index)) for index in range(1, 7)]
        for number, (event, payload) in enumerate(deliveries, start=1):
            body = json.dumps(payload).encode()
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": f"34343434-0034-0000-0000-{number:012d}",
                "X-Hub-Signature-256": sign(body),
            }
            assert httpx.post(f"{url}/github/webhooks", content=body, headers=headers, timeout=30).status_code == 202

        engine = create_engine(database_url)
        try:
            def processed() -> bool:
                with engine.connect() as connection:
                    return connection.scalar(text("SELECT count(*) FROM delivery WHERE status = 'done'")) == 9

            wait_for(processed, "the old product to process its deliveries")
        finally:
            engine.dispose()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def schema_snapshot(database_url: str) -> dict[str, Any]:
    engine = create_engine(database_url)
    try:
        inspector = inspect(engine)
        with engine.connect() as connection:
            heads = sorted(MigrationContext.configure(connection).get_current_heads())
        return {
            "heads": heads,
            "tables": {table: sorted(column["name"] for column in inspector.get_columns(table)) for table in inspector.get_table_names()},
        }
    finally:
        engine.dispose()


def unnamed_constraints(database_url: str) -> list[str]:
    """List every unique, foreign-key, check constraint and index that has no name."""
    engine = create_engine(database_url)
    missing = []
    try:
        inspector = inspect(engine)
        for table in inspector.get_table_names():
            if table == "alembic_version":
                continue
            kinds = {
                "unique": inspector.get_unique_constraints(table),
                "foreign key": inspector.get_foreign_keys(table),
                "check": inspector.get_check_constraints(table),
                "index": inspector.get_indexes(table),
            }
            for kind, constraints in kinds.items():
                missing += [f"{table}: {kind} {constraint}" for constraint in constraints if not constraint.get("name")]
            if engine.dialect.name == "postgresql" and not inspector.get_pk_constraint(table).get("name"):
                missing.append(f"{table}: primary key without a name")
    finally:
        engine.dispose()
    return missing


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database with no tables: a SQLite file, or a new PostgreSQL database with TEST_DATABASE_URL."""
    if not (POSTGRES_URL or "").startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"release_bot_migrations_{uuid.uuid4().hex[:12]}"
    url = create_postgres_database(POSTGRES_URL or "", name)
    yield url
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_database_with_rows(empty_database_url: str, tmp_path: Path) -> None:
    old = extract_old_product(tmp_path / "old-product")
    run_old_cli(old, empty_database_url, "db", "upgrade")
    fill_with_old_product(old, empty_database_url, tmp_path)

    upgrade_database(empty_database_url)
    upgraded = schema_snapshot(empty_database_url)
    upgrade_database(empty_database_url)
    assert schema_snapshot(empty_database_url) == upgraded
    downgrade_database(empty_database_url, "0001")
    assert schema_snapshot(empty_database_url)["heads"] == ["0001"]
    upgrade_database(empty_database_url)
    assert schema_snapshot(empty_database_url) == upgraded

    assert unnamed_constraints(empty_database_url) == []
    # Raises AutogenerateDiffsDetected if the models and the migrated schema differ.
    command.check(alembic_config(empty_database_url))

    settings = load_settings(_env_file=None, database_url=empty_database_url, github_webhook_secret=WEBHOOK_SECRET, scheduler_enabled=False)
    with TestClient(create_app(settings)) as client:
        listed = client.get("/api/v1/runs", params={"repo": "octo-org/widget"}).json()["runs"]
        run = client.get("/api/v1/runs/30034").json()
    assert sorted(item["run_id"] for item in listed) == [30034, 30035, 30036]
    attempt = run["attempts"][0]
    assert attempt["conclusion"] == "failure"
    assert attempt["duration_s"] == 312.0
    assert sorted((job["name"], job["duration_s"]) for job in attempt["jobs"]) == [("build", 312.0), ("lint", 60.0)]


def test_downgrade_base_round_trip(empty_database_url: str) -> None:
    upgrade_database(empty_database_url)
    upgraded = schema_snapshot(empty_database_url)
    downgrade_database(empty_database_url, "base")
    assert schema_snapshot(empty_database_url)["tables"].keys() <= {"alembic_version"}
    upgrade_database(empty_database_url)
    assert schema_snapshot(empty_database_url) == upgraded
    assert unnamed_constraints(empty_database_url) == []
    command.check(alembic_config(empty_database_url))
