"""The webhook secret: from GITHUB_WEBHOOK_SECRET, or generated once and kept in the database."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import Engine

from bot.config import Settings
from storage import state
from storage.db import session_scope

logger = logging.getLogger(__name__)


def resolve_webhook_secret(settings: Settings, engine: Engine) -> tuple[str, bool]:
    """Return the webhook secret and whether it was generated just now."""
    if settings.github_webhook_secret is not None:
        return settings.github_webhook_secret.get_secret_value(), False
    with session_scope(engine) as session:
        stored = state.get_value(session=session, key=state.WEBHOOK_SECRET_KEY)
        if stored:
            return stored, False
        generated = secrets.token_hex(32)
        state.set_value(session=session, key=state.WEBHOOK_SECRET_KEY, value=generated)
    return generated, True


def announce_generated_secret(secret: str, public_url: str) -> None:
    """Print a generated secret once, with where to paste it."""
    print(
        "\nNo GITHUB_WEBHOOK_SECRET was set, so release-bot generated one and stored it in its\n"
        "database. Paste these into your GitHub App's settings (General > Webhook):\n\n"
        f"  Webhook URL:    {public_url.rstrip('/')}/github/webhooks\n"
        f"  Webhook secret: {secret}\n\n"
        "It is shown only this once; set GITHUB_WEBHOOK_SECRET to choose your own.\n",
        flush=True,
    )
