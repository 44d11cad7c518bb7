"""Lenient readers for webhook payloads.

GitHub's payloads (and the community examples of them) often lack optional fields or carry
values newer than any schema, so handlers read only what they use through these functions.
A missing required field raises InvalidPayload naming the field path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.errors import InvalidPayload

JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def describe_json(value: Any) -> str:
    """Name a parsed JSON value's type as JSON does: null, a string, an array, ..."""
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def require_object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    """Return a nested object, or raise InvalidPayload if it is missing or not an object."""
    if key not in payload:
        raise InvalidPayload(f"`{key}` is missing, expected an object")
    value = payload[key]
    if not isinstance(value, dict):
        raise InvalidPayload(f"`{key}` must be an object, got {describe_json(value)}")
    return value


def optional_object(payload: dict[str, Any] | None, key: str) -> dict[str, Any]:
    """Return a nested object, or an empty one if it is missing or null."""
    value = (payload or {}).get(key)
    return value if isinstance(value, dict) else {}


# GitHub ids fit in a signed 64-bit column; counters (attempts, run and step numbers, pull
# request numbers) fit in a 32-bit one. A larger value cannot be stored, so it is not read.
MAX_ID = 2**63 - 1
MAX_COUNTER = 2**31 - 1


def as_int(value: Any, maximum: int) -> int | None:
    """Return a JSON number or digit string as an int from 0 to `maximum`, else None."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= maximum else None


def optional_list(obj: dict[str, Any], key: str) -> list[Any]:
    """Return a list field, or an empty list if it is missing or not a list."""
    value = obj.get(key)
    return value if isinstance(value, list) else []


def require_int(obj: dict[str, Any], key: str, *, where: str, maximum: int = MAX_ID) -> int:
    """Return a positive integer field, or raise InvalidPayload naming `where.key`."""
    value = obj.get(key)
    number = as_int(value, maximum)
    if number is None or number == 0:
        value_json = json.dumps(value, ensure_ascii=False)
        if len(value_json) > 80:
            value_json = value_json[:80] + "..."
        raise InvalidPayload(f"`{where}.{key}` must be an integer from 1 to {maximum}, got {value_json}")
    return number


def optional_int(obj: dict[str, Any], key: str, *, maximum: int = MAX_ID) -> int | None:
    """Return an integer field from 0 to `maximum`, or None if it is missing or not one."""
    return as_int(obj.get(key), maximum)


def optional_str(obj: dict[str, Any], key: str, *, max_length: int | None = None) -> str | None:
    """Return a string field, or None; numbers are turned into strings.

    NUL characters are dropped because PostgreSQL text columns cannot store them.
    """
    value = obj.get(key)
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).replace("\x00", "")
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
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, UTC)
        if not isinstance(value, str) or not value.strip():
            return None
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        # Out-of-range epochs and dates near year 1 or 9999 fail in conversion, not parsing.
        return None


def repository_name(payload: dict[str, Any]) -> str | None:
    """Return `repository.full_name` in lower case, as the bot keys repositories."""
    name = optional_str(optional_object(payload, "repository"), "full_name")
    return name.lower() if name else None
