"""Crash safety of ingestion: `release-bot serve` killed with SIGKILL loses no stored delivery
and counts none twice after a restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from storage.db import create_db_engine
from storage.models import Delivery, Job
from tests.conftest import WEBHOOK_SECRET, sign
from tests.github.test_sequences import RUN_ID, job_event, run_event

# Upper bounds for a slow machine; the test returns as soon as the condition holds.
START_TIMEOUT_SECONDS = 60.0
DRAIN_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def release_bot_command() -> list[str]:
    """Return the `release-bot` console script installed next to this interpreter."""
    script = Path(sys.executable).parent / "release-bot"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from bot.cli import main; main()"]


@dataclass
class Server:
    """One `release-bot serve` process on a free port of 127.0.0.1."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def post_webhook(self, event: str, payload: dict[str, Any], delivery_id: str) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id,
            "X-Hub-Signature-256": sign(body),
        }
        return httpx.post(
            f"{self.base_url}/github/webhooks", content=body, headers=headers, timeout=30
        )

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.base_url}{path}", params=params, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def kill(self) -> None:
        """Kill the process with SIGKILL, as the kernel's OOM killer or a power cut would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def start_server(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """Return a function that starts `release-bot serve`; every server is killed at teardown."""
    servers: list[Server] = []

    def start(*, worker_enabled: bool) -> Server:
        port = free_port()
        log_path = tmp_path / f"serve-{len(servers)}.log"
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WORKER_ENABLED": str(worker_enabled).lower(),
            "WORKER_POLL_SECONDS": "0.1",
            "SCHEDULER_ENABLED": "false",
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                release_bot_command() + ["serve"],
                cwd=tmp_path,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server(process, f"http://127.0.0.1:{port}", log_path)
        servers.append(server)
        wait_ready(server)
        return server

    yield start

    for server in servers:
        if server.process.poll() is None:
            server.kill()


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"release-bot serve exited with status {server.process.returncode}:\n{server.log()}"
            )
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(POLL_SECONDS)
    pytest.fail(f"release-bot serve was not ready after {START_TIMEOUT_SECONDS} s:\n{server.log()}")


def delivery_counts(database_url: str) -> dict[str, int]:
    engine = create_db_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
            return {status: count for status, count in rows}
    finally:
        engine.dispose()


def wait_drained(database_url: str, server: Server) -> dict[str, int]:
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        counts = delivery_counts(database_url)
        if not counts.get("pending"):
            return counts
        time.sleep(POLL_SECONDS)
    pytest.fail(
        f"deliveries still pending after {DRAIN_TIMEOUT_SECONDS} s: {counts}\n{server.log()}"
    )


def job_count(database_url: str) -> int:
    engine = create_db_engine(database_url)
    try:
        with Session(engine) as session:
            return session.scalar(select(func.count()).select_from(Job)) or 0
    finally:
        engine.dispose()


def run_deliveries(attempt: int) -> list[tuple[str, dict[str, Any]]]:
    """Return the events of one attempt of RUN_ID: three jobs through their states, then the run."""
    events: list[tuple[str, dict[str, Any]]] = []
    jobs = {
        70001 + 10 * attempt: "build",
        70002 + 10 * attempt: "test (3.11, ubuntu)",
        70003 + 10 * attempt: "lint",
    }
    for status in ("queued", "in_progress", "completed"):
        for job_id, name in jobs.items():
            events.append(("workflow_job", job_event(job_id, status, name=name, attempt=attempt)))
    events.append(("workflow_run", run_event("completed", attempt=attempt)))
    return events


def send_all(
    server: Server, events: list[tuple[str, dict[str, Any]]], delivery_ids: list[str]
) -> list[int]:
    """Send events under the given delivery ids; return the HTTP status of each response."""
    statuses = []
    for (event, payload), delivery_id in zip(events, delivery_ids, strict=True):
        response = server.post_webhook(event, payload, delivery_id)
        assert response.status_code in (200, 202), response.text
        statuses.append(response.status_code)
    return statuses


def new_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{index}-{uuid.uuid4()}" for index in range(count)]


def check_counts(server: Server, database_url: str, *, attempts: int) -> None:
    assert server.get("/api/v1/stats", metric="build_time")["count"] == attempts
    assert server.get("/api/v1/stats", metric="queue_time")["count"] == 3 * attempts
    assert server.get("/api/v1/stats", metric="test_duration")["count"] == 2 * attempts
    run = server.get(f"/api/v1/runs/{RUN_ID}")
    assert [attempt["attempt"] for attempt in run["attempts"]] == list(range(1, attempts + 1))
    for attempt in run["attempts"]:
        assert attempt["duration_s"] == 360.0
        assert {job["status"] for job in attempt["jobs"]} == {"completed"}
        assert sorted(job["duration_s"] for job in attempt["jobs"]) == [60.0, 60.0, 60.0]
    assert job_count(database_url) == 3 * attempts


def test_kill_before_processing_loses_nothing(start_server: Any, database_url: str) -> None:
    receiver = start_server(worker_enabled=False)
    first = run_deliveries(attempt=1)
    first_ids = new_ids("first", len(first))
    assert send_all(receiver, first, first_ids) == [202] * len(first)
    assert delivery_counts(database_url) == {"pending": len(first)}

    receiver.kill()
    server = start_server(worker_enabled=True)

    assert wait_drained(database_url, server) == {"done": len(first)}
    check_counts(server, database_url, attempts=1)

    # A redelivery of a delivery stored before the crash gets the `duplicate` response.
    assert send_all(server, first[:1], first_ids[:1]) == [200]
    assert wait_drained(database_url, server) == {"done": len(first)}


def test_kill_during_processing_counts_once(start_server: Any, database_url: str) -> None:
    server = start_server(worker_enabled=True)
    first = run_deliveries(attempt=1)
    send_all(server, first, new_ids("first", len(first)))
    wait_drained(database_url, server)
    # The same facts under new delivery ids, and a second attempt.
    again = first + run_deliveries(attempt=2)
    again_ids = new_ids("again", len(again))
    half = len(again) // 2

    # The kill comes at whatever point processing of the first half has reached; GitHub then
    # redelivers every delivery, so the first half arrives twice under the same ids.
    send_all(server, again[:half], again_ids[:half])
    server.kill()
    restarted = start_server(worker_enabled=True)
    statuses = send_all(restarted, again, again_ids)

    assert statuses == [200] * half + [202] * (len(again) - half)
    assert wait_drained(database_url, restarted) == {"done": len(first) + len(again)}
    check_counts(restarted, database_url, attempts=2)
