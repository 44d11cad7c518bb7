"""LOG_FORMAT=json: one JSON object per line, one INFO line per processed delivery, no secrets."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.config import Settings
from bot.logs import TextFormatter, configure_logging
from tests.conftest import WEBHOOK_SECRET, BotClient


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Configure logging as LOG_FORMAT=json does, writing to a buffer; then restore pytest's handlers."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO", "json")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_line_per_delivery(json_logs: io.StringIO, app_settings: Settings, app_key_pem: str) -> None:
    run = {"id": 8001, "name": "CI", "status": "completed", "conclusion": "success", "run_attempt": 1,
           "run_started_at": "2024-06-03T09:00:00Z", "updated_at": "2024-06-03T09:01:00Z"}
    with TestClient(create_app(app_settings)) as client:
        bot = BotClient(client)
        bot.send("workflow_run", {"action": "completed", "workflow_run": run, "repository": {"id": 1, "full_name": "o/r"}}, delivery_id="log-ok-1")
        bot.send("workflow_run", {"action": "completed", "workflow_run": []}, delivery_id="log-bad-2")

    output = json_logs.getvalue()
    lines = [line for line in output.splitlines() if line.strip()]
    entries: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)

    processed = [entry for entry in entries if entry["message"] == "delivery processed"]
    assert [(entry["delivery_id"], entry["outcome"], entry["level"]) for entry in processed] == [
        ("log-ok-1", "done", "INFO"),
        ("log-bad-2", "invalid", "INFO"),
    ]
    assert all(entry["event"] == "workflow_run" for entry in processed)
    warnings = [entry for entry in entries if entry["level"] == "WARNING" and entry.get("delivery_id") == "log-bad-2"]
    assert len(warnings) == 1
    assert "invalid payload" in warnings[0]["message"]

    assert WEBHOOK_SECRET not in output
    key_body = app_key_pem.splitlines()[1]
    assert key_body not in output


def test_text_fields_before_traceback() -> None:
    try:
        raise RuntimeError("insert failed")
    except RuntimeError:
        record = logging.getLogger("bot.webhooks").makeRecord(
            "bot.webhooks", logging.ERROR, __file__, 0, "webhook delivery not stored", (), sys.exc_info(),
            extra={"delivery_id": "d-1", "event": "workflow_job"},
        )

    lines = TextFormatter("%(levelname)s %(name)s: %(message)s").format(record).splitlines()

    assert lines[0] == "ERROR bot.webhooks: webhook delivery not stored delivery_id=d-1 event=workflow_job"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: insert failed"
