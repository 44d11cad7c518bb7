"""Two real `release-bot serve` processes on one database (SQLite file, then PostgreSQL).

A burst of signed deliveries goes to both; each must be processed once. Outbox messages go to
a local receiver once each. A probe job runs once per period and never in both processes at
the same time. The redelivery sweep, whichever process runs it, requests one redelivery. After one
process is killed with SIGKILL while it holds the probe job's lock, the other carries on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from storage import outbox
from storage.db import create_db_engine, session_scope, upgrade_database
from storage.locks import JobRun
from storage.models import Delivery
from tests.conftest import WEBHOOK_SECRET, sign
from tests.ops.conftest import APP_ID

REPO_ROOT = Path(__file__).resolve().parents[2]
MISSED_GUID = "28282828-0028-0000-0000-000000000001"
WAIT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    """Poll until `condition` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class FakeServices:
    """A local HTTP server standing in for GitHub's App delivery API and an outbox receiver."""

    public_key: rsa.RSAPublicKey
    rows: list[dict[str, Any]] = field(default_factory=list)
    posts: list[int] = field(default_factory=list)
    lists: int = 0
    probes: list[dict[str, Any]] = field(default_factory=list)
    unplanned: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check_jwt(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer":
            return False
        try:
            return str(jwt.decode(token, self.public_key, algorithms=["RS256"])["iss"]) == str(APP_ID)
        except jwt.InvalidTokenError:
            return False

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        url = httpx.URL(path)
        with self.lock:
            if method == "POST" and url.path == "/probe":
                self.probes.append(json.loads(body))
                return 200, {"ok": True}
            if url.path.startswith("/app/hook/deliveries"):
                if not self.check_jwt(headers.get("authorization", "")):
                    self.unplanned.append(f"{method} {path} without the App JWT")
                    return 401, {"message": "A JSON web token could not be decoded"}
                if method == "GET" and url.path == "/app/hook/deliveries" and "page" not in url.params:
                    self.lists += 1
                    return 200, list(reversed(self.rows))
                parts = url.path.strip("/").split("/")
                if method == "POST" and len(parts) == 5 and parts[4] == "attempts":
                    self.posts.append(int(parts[3]))
                    self.rows.append(delivery_row(2800002, MISSED_GUID, datetime.now(UTC), 200))
                    return 202, {}
            self.unplanned.append(f"{method} {path}")
            return 404, {"message": "Not Found"}

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        services = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                self.answer()

            def answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                status, payload = services.handle(self.command, self.path, self.headers, self.rfile.read(length))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"


def delivery_row(row_id: int, guid: str, delivered_at: datetime, status_code: int) -> dict[str, Any]:
    return {
        "id": row_id, "guid": guid, "delivered_at": delivered_at.isoformat().replace("+00:00", "Z"),
        "redelivery": status_code == 200, "duration": 10.0, "status": "OK" if status_code == 200 else "Service Unavailable",
        "status_code": status_code, "event": "workflow_job", "action": "completed",
        "installation_id": 424242, "repository_id": 1001,
    }


@dataclass
class Replica:
    """One `release-bot serve` subprocess and its log file."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_entries(self) -> list[dict[str, Any]]:
        """Parse the JSON log; a process killed mid-write may leave its last line cut short."""
        lines = [line for line in self.log_path.read_text().splitlines() if line.strip()]
        entries = [json.loads(line) for line in lines[:-1]]
        try:
            entries.append(json.loads(lines[-1]))
        except json.JSONDecodeError:
            assert self.process.returncode == -signal.SIGKILL, f"unparsable last log line {lines[-1]!r}"
        return entries

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def start_replica(name: str, env: dict[str, str], tmp_path: Path) -> Replica:
    port = free_port()
    log_path = tmp_path / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.ops.replica_main", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("wb"),
    )
    return Replica(process=process, url=f"http://127.0.0.1:{port}", log_path=log_path)


def is_ready(replica: Replica) -> bool:
    assert replica.process.poll() is None, replica.log_path.read_text()[-3000:]
    try:
        return httpx.get(f"{replica.url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def run_payload(number: int) -> tuple[str, dict[str, Any]]:
    if number % 2:
        job = {"id": 9_000_000 + number, "run_id": 7_000_000 + number // 4, "name": f"job {number}",
               "status": "completed", "conclusion": "success", "started_at": "2024-06-04T08:00:00Z",
               "completed_at": "2024-06-04T08:02:00Z", "created_at": "2024-06-04T07:59:00Z"}
        return "workflow_job", {"action": "completed", "workflow_job": job, "repository": {"id": 1001, "full_name": "octo-org/widget"}}
    run = {"id": 7_000_000 + number // 4, "name": "CI", "run_attempt": 1, "status": "completed", "conclusion": "success",
           "run_started_at": "2024-06-04T08:00:00Z", "updated_at": "2024-06-04T08:05:00Z"}
    return "workflow_run", {"action": "completed", "workflow_run": run, "repository": {"id": 1001, "full_name": "octo-org/widget"}}


def post_delivery(url: str, number: int) -> int:
    event, payload = run_payload(number)
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": f"replica-{number:04d}",
        "X-Hub-Signature-256": sign(body),
    }
    return httpx.post(f"{url}/github/webhooks", content=body, headers=headers, timeout=30).status_code


def job_log(path: Path) -> list[tuple[str, int, str]]:
    if not path.exists():
        return []
    return [(kind, int(pid), period) for kind, pid, period in (line.split() for line in path.read_text().splitlines())]


def assert_runs_never_overlap(entries: list[tuple[str, int, str]]) -> None:
    """Each start must be followed by the end of the same process before any other start."""
    running: int | None = None
    for kind, pid, _ in entries:
        if kind == "start":
            assert running is None, f"process {pid} started the probe while {running} was running it"
            running = pid
        else:
            assert running == pid, f"process {pid} ended a run that process {running} held"
            running = None


def total(replicas: list[Replica], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return sum(replica.metrics().get(key, 0.0) for replica in replicas)


@pytest.fixture
def services(app_key: rsa.RSAPrivateKey) -> Iterator[tuple[FakeServices, str]]:
    fake = FakeServices(public_key=app_key.public_key())
    fake.rows.append(delivery_row(2800001, MISSED_GUID, datetime.now(UTC) - timedelta(minutes=2), 503))
    server, url = fake.serve()
    yield fake, url
    server.shutdown()


def test_two_replicas_share_work(
    database_url: str, app_key_pem: str, services: tuple[FakeServices, str], tmp_path: Path
) -> None:
    fake, fake_url = services
    # Replicas are rolled out after `release-bot db upgrade`, as docs/deploy.md describes.
    upgrade_database(database_url)
    job_log_path = tmp_path / "probe.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO_ROOT),
        "DATABASE_URL": database_url,
        "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_PRIVATE_KEY": app_key_pem,
        "GITHUB_API_URL": fake_url,
        "LOG_FORMAT": "json",
        "WORKER_POLL_SECONDS": "0.1",
        "REDELIVERY_INTERVAL_SECONDS": "1",
        "REDELIVERY_FIRST_DELAY_SECONDS": "0.5",
        "SCHEDULER_LEASE_SECONDS": "3",
        "PROBE_RECEIVER_URL": fake_url,
        "PROBE_JOB_LOG": str(job_log_path),
    }
    replicas = [start_replica("a", env, tmp_path), start_replica("b", env, tmp_path)]
    engine = create_db_engine(database_url)
    try:
        for replica in replicas:
            wait_for(lambda replica=replica: is_ready(replica), f"{replica.url}/readyz")

        # Burst: 60 deliveries spread over both replicas, the first 10 sent to both.
        numbers = list(range(60))
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda number: post_delivery(replicas[number % 2].url, number), numbers))
            duplicates = list(pool.map(lambda number: post_delivery(replicas[(number + 1) % 2].url, number), numbers[:10]))
        assert set(statuses) == {202}
        assert set(duplicates) == {200}
        with session_scope(engine) as session:
            for index in range(30):
                outbox.enqueue(session=session, kind="probe", target="receiver", payload={"burst": index})

        def all_processed() -> bool:
            with session_scope(engine) as session:
                return session.scalar(select(func.count()).where(Delivery.status == "done")) == 60

        wait_for(all_processed, "60 processed deliveries")
        wait_for(lambda: len([probe for probe in fake.probes if "burst" in probe]) >= 30, "30 outbox messages")
        wait_for(lambda: fake.lists >= 6, "six redelivery sweeps")
        wait_for(lambda: len({period for kind, _, period in job_log(job_log_path) if kind == "end"}) >= 3, "three probe periods")

        # Received before the claims are read: a period's claim commits before its message is sent.
        received = list(fake.probes)
        with session_scope(engine) as session:
            rows = session.execute(select(Delivery.delivery_id, Delivery.status, Delivery.attempts)).all()
            claimed_periods = list(session.scalars(select(JobRun.period).where(JobRun.job == "probe")))
        assert len(rows) == 60
        assert {status for _, status, _ in rows} == {"done"}
        assert {attempts for _, _, attempts in rows} == {1}
        for event in ("workflow_run", "workflow_job"):
            assert total(replicas, "release_bot_webhook_deliveries_received_total", event=event) == 30
            assert total(replicas, "release_bot_webhook_deliveries_processed_total", event=event, outcome="done") == 30

        burst = Counter(probe["burst"] for probe in received if "burst" in probe)
        assert burst == Counter(range(30))
        periods = Counter(probe["period"] for probe in received if "period" in probe)
        assert all(count == 1 for count in periods.values()), periods
        assert set(periods) <= set(claimed_periods)
        assert_runs_never_overlap(job_log(job_log_path))
        assert fake.posts == [2800001]
        assert fake.unplanned == []

        # Kill whichever replica is inside a probe run, so it dies holding the job's lock.
        wait_for(lambda: job_log(job_log_path)[-1][0] == "start", "a replica to hold the probe lock")
        holder_pid = job_log(job_log_path)[-1][1]
        killed = next(replica for replica in replicas if replica.process.pid == holder_pid)
        second = next(replica for replica in replicas if replica is not killed)
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait()
        killed_at = len(job_log(job_log_path))
        wait_for(
            lambda: ("end", second.process.pid) in [entry[:2] for entry in job_log(job_log_path)[killed_at:]],
            "the other replica to run the probe after the holder was killed",
        )
        assert post_delivery(second.url, 100) == 202

        def late_delivery_done() -> bool:
            with session_scope(engine) as session:
                return session.scalar(select(Delivery.status).where(Delivery.delivery_id == "replica-0100")) == "done"

        wait_for(late_delivery_done, "the surviving replica to process a delivery")
        assert fake.posts == [2800001]
        for replica in replicas:
            entries = replica.log_entries()
            assert entries, f"{replica.log_path} is empty"
            assert not [entry for entry in entries if entry["level"] in ("ERROR", "CRITICAL") or "exception" in entry]
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
                try:
                    replica.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    replica.process.kill()
        engine.dispose()
