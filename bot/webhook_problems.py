"""The responses and log lines of `POST /github/webhooks` for a delivery it could not store, and
for a delivery id stored before with another body."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi.concurrency import run_in_threadpool

from bot.database_errors import DatabaseProblem, classify_database_error
from bot.ingest import read_stored_body

logger = logging.getLogger(__name__)

# The `error` of a 503 for a delivery that was not stored; `reason` names the database problem.
NOT_STORED_MESSAGE = "the delivery was not stored; redeliver it once the database works again"
# How long a duplicate delivery waits for the read of the stored body it is compared with.
DUPLICATE_CHECK_TIMEOUT_SECONDS = 2.0


def not_stored(fields: dict[str, str], exc: Exception) -> tuple[int, dict[str, Any]]:
    """Log a delivery whose insert raised; return 503 if the database is unavailable, else 500.

    `fields` are the delivery id and event, for the log line. An error that is not a database
    outage is a bug: it is logged at ERROR with its traceback.
    """
    problem = classify_database_error(exc)
    if problem is None:
        logger.exception("webhook delivery not stored", extra=fields)
        return 500, {"error": "the delivery could not be stored; send it again later"}

    logger.warning(
        "webhook delivery not stored: database %s", problem.kind,
        extra={**fields, "error": problem.detail},
    )
    content = {"error": NOT_STORED_MESSAGE, "delivery_id": fields["delivery_id"], "reason": problem.message}
    return 503, content


def commit_timed_out(delivery_id: str, event: str, timeout_s: float) -> tuple[int, dict[str, Any]]:
    """Log a delivery whose insert did not commit within `timeout_s`; return its 503.

    The request stopped waiting, so the writer drops the row if it is still queued. If its
    transaction had already begun, the row can still commit, and GitHub's redelivery is then
    a duplicate.
    """
    logger.warning(
        "webhook delivery not stored within %g s: database busy", timeout_s,
        extra={"delivery_id": delivery_id, "event": event},
    )
    problem = DatabaseProblem(
        "busy",
        f"the delivery's insert did not commit within {timeout_s:g} s",
        "on SQLite, end the long transaction of the other process that uses the same file; on "
        "PostgreSQL, look for a session that locks the delivery table",
        "commit timed out",
    )
    return 503, {"error": NOT_STORED_MESSAGE, "delivery_id": delivery_id, "reason": problem.message}


async def warn_if_body_differs(engine: Any, row: dict[str, Any]) -> None:
    """Log a WARNING when a delivery id is stored already with another body; the stored one stays.

    Only duplicates pay for this read. A failed read is logged and does not fail the request,
    because the delivery is stored.
    """
    delivery_id = row["delivery_id"]
    try:
        async with asyncio.timeout(DUPLICATE_CHECK_TIMEOUT_SECONDS):
            stored_body = await run_in_threadpool(read_stored_body, engine, delivery_id)
    except Exception as exc:  # noqa: BLE001 - only the comparison failed
        logger.warning(
            "duplicate delivery not compared with the stored one: %r", exc,
            extra={"delivery_id": delivery_id, "event": row["event"]},
        )
        return

    if stored_body is not None and stored_body != row["body"]:
        logger.warning(
            "duplicate delivery id with a different body: kept the stored delivery, ignored this one",
            extra={
                "delivery_id": delivery_id,
                "event": row["event"],
                "stored_bytes": len(stored_body),
                "received_bytes": len(row["body"]),
            },
        )
