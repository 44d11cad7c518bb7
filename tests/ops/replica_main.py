"""`release-bot` for the replica tests, with a probe job and a probe outbox sender registered first.

Run as `python -m tests.ops.replica_main serve --host 127.0.0.1 --port N`. The environment
variables PROBE_RECEIVER_URL (a local HTTP receiver) and PROBE_JOB_LOG (a file both replicas
append to) configure the probe; everything else is the real command.
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
from sqlalchemy import Engine

from bot import outbox as sender
from bot.cli import main
from bot.config import Settings
from bot.scheduler import ScheduledJob, register_job
from storage import locks, outbox
from storage.db import session_scope
from storage.outbox import OutboxMessage

RECEIVER_URL = os.environ["PROBE_RECEIVER_URL"]
JOB_LOG = os.environ["PROBE_JOB_LOG"]
# The probe's period: one result is expected per two-second slot.
PERIOD_SECONDS = 2
# Holding the lock this long makes an overlap between replicas visible in the job log.
HOLD_SECONDS = 0.3


def log_line(text: str) -> None:
    # O_APPEND keeps each short line whole when both replicas write to the file.
    descriptor = os.open(JOB_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, f"{text}\n".encode())
    finally:
        os.close(descriptor)


def probe(engine: Engine, settings: Settings) -> None:
    """Record one outbox message per period and note start and end of each run in the job log."""
    period = str(int(time.time() // PERIOD_SECONDS))
    log_line(f"start {os.getpid()} {period}")
    with session_scope(engine) as session:
        if locks.claim_period(session=session, job="probe", period=period):
            outbox.enqueue(
                session=session, kind="probe", target="receiver", payload={"period": period}, dedupe_key=f"probe:{period}"
            )
    time.sleep(HOLD_SECONDS)
    log_line(f"end {os.getpid()} {period}")


def send_probe(message: OutboxMessage) -> dict[str, Any]:
    """Outbox sender of kind `probe`: POST the message id and payload to the local receiver."""
    response = httpx.post(
        f"{RECEIVER_URL}/probe", json={"id": message.id, "pid": os.getpid(), **message.payload}, timeout=10
    )
    response.raise_for_status()
    return {"status": response.status_code}


register_job(lambda settings: ScheduledJob(id="probe", function=probe, interval_seconds=0.5, first_delay_seconds=0.5))
sender.register_sender("probe", send_probe)

if __name__ == "__main__":
    main()
