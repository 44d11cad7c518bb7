"""`release-bot worker`: the delivery worker in a process of its own, beside a server without one."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from storage import deliveries
from storage.db import create_db_engine, session_scope
from storage.models import Delivery, DeliveryStatus, Job
from tests.cli_support import clean_environment, release_bot_command

WAIT_SECONDS = 60.0


def job_delivery(delivery_id: str, job_id: int) -> dict[str, object]:
    payload = {
        "action": "queued",
        "workflow_job": {"id": job_id, "run_id": 8100, "name": f"job {job_id}", "status": "queued"},
        "repository": {"id": 1001, "full_name": "octo-org/widget"},
        "installation": {"id": 424242},
    }
    return {
        "delivery_id": delivery_id,
        "event": "workflow_job",
        "action": "queued",
        "installation_id": 424242,
        "repository": "octo-org/widget",
        "headers": {"x-github-event": "workflow_job"},
        "body": json.dumps(payload).encode(),
        "status": DeliveryStatus.PENDING,
        "error": None,
    }


def test_worker_command_processes_pending_deliveries(database_url: str, tmp_path: Path) -> None:
    engine = create_db_engine(database_url)
    with session_scope(engine) as session:
        deliveries.insert_deliveries(session=session, rows=[job_delivery(f"split-{n}", n) for n in (1, 2, 3)])
    environment = clean_environment(DATABASE_URL=database_url, WORKER_POLL_SECONDS="0.1", LOG_LEVEL="INFO")
    process = subprocess.Popen(
        [*release_bot_command(), "worker"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            with Session(engine) as session:
                statuses = set(session.scalars(select(Delivery.status)).all())
            if statuses == {"done"}:
                break
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            time.sleep(0.1)
        # A delivery stored while the worker runs is found by its poll.
        with session_scope(engine) as session:
            deliveries.insert_deliveries(session=session, rows=[job_delivery("split-4", 4)])
        while time.monotonic() < deadline:
            with Session(engine) as session:
                if session.get(Job, 4) is not None:
                    break
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
        engine.dispose()

    assert process.returncode == 0, output
    assert "release-bot worker processing deliveries" in output
    with Session(create_db_engine(database_url)) as session:
        assert set(session.scalars(select(Job.id)).all()) == {1, 2, 3, 4}
        assert set(session.scalars(select(Delivery.status)).all()) == {"done"}
