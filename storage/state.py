"""Values the bot generates and keeps in its database, such as its webhook secret."""

from __future__ import annotations

from sqlmodel import Session

from storage.models import AppState
from storage.types import utc_now

WEBHOOK_SECRET_KEY = "github_webhook_secret"


def get_value(*, session: Session, key: str) -> str | None:
    """Return a stored value, or None."""
    row = session.get(AppState, key)
    return row.value if row else None


def set_value(*, session: Session, key: str, value: str) -> None:
    """Store a value under a key, replacing any earlier one."""
    row = session.get(AppState, key) or AppState(key=key, value=value)
    row.value = value
    row.updated_at = utc_now()
    session.add(row)
