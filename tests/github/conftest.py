"""Fixtures for webhook ingestion tests: GitHub's example payloads from npm, the repository's
own fixture files, and helpers that read what a delivery stored."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlmodel import Session

from storage.models import (
    CheckSuite,
    Delivery,
    Deployment,
    Installation,
    Job,
    Metric,
    PullRequest,
    Release,
    Repository,
    RunAttempt,
    Step,
    Tag,
    WorkflowRun,
)
from tests.conftest import BotClient

FIXTURES = Path(__file__).parent / "fixtures"
NPM_DIR = Path(__file__).parent.parent / "npm"
EXAMPLES_INDEX = NPM_DIR / "node_modules/@octokit/webhooks-examples/api.github.com/index.json"
# `npm ci` downloads about 1 MB; a slow registry gets this long before the suite fails.
NPM_TIMEOUT_SECONDS = 300

# Tables that hold facts derived from deliveries, emptied between independent examples.
FACT_TABLES = (
    Step,
    Job,
    RunAttempt,
    WorkflowRun,
    PullRequest,
    Release,
    Deployment,
    CheckSuite,
    Tag,
    Repository,
    Installation,
    Metric,
)


def install_webhook_examples() -> None:
    """Run `npm ci` in tests/npm, or fail naming the command and its output."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(
            "npm is not on PATH: install Node.js and npm to test against GitHub's example payloads"
        )
    command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        result = subprocess.run(
            command,
            cwd=NPM_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_SECONDS,
            env={**os.environ, "npm_config_update_notifier": "false"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"`npm ci` in {NPM_DIR} timed out after {NPM_TIMEOUT_SECONDS} s; check the npm registry access"
        )
    if result.returncode != 0:
        pytest.fail(
            f"`npm ci` in {NPM_DIR} failed with exit status {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )


@pytest.fixture(scope="session")
def webhook_examples() -> dict[str, list[dict[str, Any]]]:
    """GitHub's example payloads from `@octokit/webhooks-examples`, by event name.

    The package is installed into tests/npm/node_modules on first use, from the pinned
    version in tests/npm/package-lock.json.
    """
    if not EXAMPLES_INDEX.is_file():
        install_webhook_examples()
    entries = json.loads(EXAMPLES_INDEX.read_text(encoding="utf-8"))
    return {entry["name"]: entry["examples"] for entry in entries}


def load_fixture(name: str) -> Any:
    """Return the parsed JSON of tests/github/fixtures/NAME, a fresh copy each call."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def send_steps(bot: BotClient, steps: Iterable[dict[str, Any]]) -> list[Any]:
    """Send scenario steps (`event`, `delivery_id`, `payload`) in order; return the responses."""
    responses = []
    for step in steps:
        responses.append(bot.send(step["event"], step["payload"], delivery_id=step["delivery_id"]))
    return responses


def with_changes(payload: dict[str, Any], key: str, **changes: Any) -> dict[str, Any]:
    """Return a copy of a payload with fields of its `key` object replaced."""
    changed = copy.deepcopy(payload)
    changed[key].update(changes)
    return changed


def clear_facts(bot: BotClient) -> None:
    """Delete every stored fact and metric, keeping the deliveries."""
    with bot.session() as session:
        for table in FACT_TABLES:
            session.execute(delete(table))
        session.commit()


def delivery_statuses(session: Session) -> dict[str, str]:
    """Return the processing status of each stored delivery, by delivery id."""
    return dict(session.execute(select(Delivery.delivery_id, Delivery.status)).all())


def count_rows(session: Session, model: type[Any]) -> int:
    """Return the number of rows of a table."""
    return session.scalar(select(func.count()).select_from(model)) or 0


def stat_count(bot: BotClient, metric: str) -> int:
    """Return the `count` that `GET /api/v1/stats` reports for a metric."""
    response = bot.client.get("/api/v1/stats", params={"metric": metric})
    assert response.status_code == 200, response.text
    return response.json()["count"]


def api_run(bot: BotClient, run_id: int) -> dict[str, Any]:
    """Return `GET /api/v1/runs/{run_id}`, failing the test on any other status than 200."""
    response = bot.client.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


def api_jobs(run: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Return every job of a run view, from all its attempts, by job id."""
    return {job["job_id"]: job for attempt in run["attempts"] for job in attempt["jobs"]}
