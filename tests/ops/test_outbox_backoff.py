"""The outbox sender waits longer after each failed batch while the database fails."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from bot import outbox
from bot.outbox import OutboxWorker


def run_until_waits(worker: OutboxWorker, count: int, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Run the sender's loop in this thread and return its first `count` waits."""
    waits: list[float] = []

    def record(timeout: float | None = None) -> bool:
        waits.append(timeout or 0.0)
        if len(waits) >= count:
            worker._stop.set()
        return False

    monkeypatch.setattr(worker._wake, "wait", record)
    worker._run()
    return waits


def test_waits_double_while_database_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    down = OperationalError("SELECT", {}, Exception("connection refused"))
    no_table = ProgrammingError("SELECT", {}, Exception('relation "outbox_message" does not exist'))
    outcomes: list[Any] = [down, no_table, down, 0] + [down] * 9

    def deliver_due(_engine: Any) -> int:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(outbox, "deliver_due", deliver_due)
    worker = OutboxWorker(engine=None, poll_seconds=1.0)  # type: ignore[arg-type]

    waits = run_until_waits(worker, 11, monkeypatch)

    # Three failures, a batch that worked, then failures up to the 30 s ceiling.
    assert waits == [1.0, 2.0, 4.0, 1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
