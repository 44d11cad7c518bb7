"""Parsing of time windows such as `--since 30d` or an ISO 8601 time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DURATION_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """Return the start of a window given as `30d`, `12h`, `2w` or an ISO 8601 time.

    Raises ValueError naming the value and the accepted forms.
    """
    match = DURATION_PATTERN.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        return (now or datetime.now(UTC)) - timedelta(**{UNITS[unit]: amount})
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"invalid time window {value!r}: use a number with s, m, h, d or w (such as 7d) "
            "or an ISO 8601 time (such as 2024-06-01T00:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
