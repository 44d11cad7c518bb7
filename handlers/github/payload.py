"""Lenient readers for webhook payloads.

GitHub's payloads (and the community examples of them) often lack optional fields or carry
values newer than any schema, so handlers read only what they use through these functions.
A missing required field raises InvalidPayload naming the field path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.errors import InvalidPayload


def require_object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    """Return a nested object, or raise InvalidPayload if it is missing or not an object."""
    value = payload.get(key)
    if not isinstance(value, dict):
        raise InvalidPayload(f"`{key}` must be an object, got {type(value).__name__}")
    return value


def optional_object(payload: dict[str, Any] | None, key: str) -> dict[str, Any]:
    """Return a nested object, or an empty one if it is missing or null."""
    value = (payload or {}).get(key)
    return value if isinstance(value, dict) else {}


def require_int(obj: dict[str, Any], key: str, *, where: str) -> int:
    """Return an integer field, or raise InvalidPayload naming `where.key`."""
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise InvalidPayload(f"`{where}.{key}` must be an integer, got {value!r}")
    return value


def optional_int(obj: dict[str, Any], key: str) -> int | None:
    """Return an integer field, or None if it is missing or not an integer."""
    value = obj.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def optional_str(obj: dict[str, Any], key: str, *, max_length: int | None = None) -> str | None:
    """Return a string field, or None; numbers are turned into strings."""
    value = obj.get(key)
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value)
    return text[:max_length] if max_length else text


def login_of(obj: dict[str, Any], key: str) -> str | None:
    """Return the `login` of a user object field such as `sender` or `actor`."""
    return optional_str(optional_object(obj, key), "login")


def parse_time(value: Any) -> datetime | None:
    """Parse a GitHub timestamp into an aware UTC datetime.

    Accepts `Z`, `+00:00` and `+0100` style offsets and Unix epoch seconds (some `push`
    payloads use them); returns None for a missing or unparsable value.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def repository_name(payload: dict[str, Any]) -> str | None:
    """Return `repository.full_name` in lower case, as the bot keys repositories."""
    name = optional_str(optional_object(payload, "repository"), "full_name")
    return name.lower() if name else None
