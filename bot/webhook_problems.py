"""The responses and log lines of `POST /github/webhooks` for a delivery it could not store."""

from __future__ import annotations

import logging
from typing import Any

from bot.database_errors import classify_database_error

logger = logging.getLogger(__name__)

# The `error` of a 503 for a delivery that was not stored; `reason` names the database problem.
NOT_STORED_MESSAGE = "the delivery was not stored; redeliver it once the database works again"


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
