"""The webhook secret: from GITHUB_WEBHOOK_SECRET, or generated once and kept in the database.

A generated secret is stored in the `app_state` table under the key `github_webhook_secret`.
`release-bot webhook-secret show` prints it again, and `rotate` replaces it.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlmodel import Session

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


def read_stored_secret(session: Session) -> str | None:
    """Return the generated webhook secret stored in the database, or None."""
    return state.get_value(session=session, key=state.WEBHOOK_SECRET_KEY) or None


def rotate_stored_secret(session: Session) -> tuple[str, bool]:
    """Store a new generated webhook secret in place of the old one.

    Returns the new secret and whether an old one was replaced. The caller commits.
    """
    replaced = read_stored_secret(session) is not None
    generated = secrets.token_hex(32)
    state.set_value(session=session, key=state.WEBHOOK_SECRET_KEY, value=generated)
    return generated, replaced


def is_public_url_derived(settings: Settings) -> bool:
    """Tell whether PUBLIC_URL is the listening address, which Settings uses when PUBLIC_URL is unset.

    NOTE: a PUBLIC_URL set to exactly that address counts as unset too, because Settings keeps
    no record of where the value came from. The printed hint is then true but unneeded.
    """
    url = urlsplit(settings.public_url)
    return (url.hostname or "") == settings.host.lower() and url.port == settings.port


def render_webhook_settings(secret: str, settings: Settings) -> str:
    """Return the webhook URL and secret to paste into the GitHub App, with where the URL comes from."""
    text = (
        f"  Webhook URL:    {settings.public_url.rstrip('/')}/github/webhooks\n"
        f"  Webhook secret: {secret}\n\n"
    )
    if is_public_url_derived(settings):
        text += (
            "PUBLIC_URL is not set, so this URL is the address the bot listens on (HOST and\n"
            "PORT). If GitHub reaches the bot at another address, such as https://bot.example.com\n"
            "behind a proxy, set PUBLIC_URL to that address and use the URL it gives.\n"
        )
    return text


def announce_generated_secret(secret: str, settings: Settings) -> None:
    """Print a generated secret once, with where to paste it."""
    print(
        "\nNo GITHUB_WEBHOOK_SECRET was set, so release-bot generated one and stored it in its\n"
        "database. Paste these into your GitHub App's settings (General > Webhook):\n\n"
        f"{render_webhook_settings(secret, settings)}"
        "`release-bot webhook-secret show` prints the secret again; set GITHUB_WEBHOOK_SECRET to\n"
        "choose your own.\n",
        flush=True,
    )


def render_rotated_secret(secret: str, replaced: bool, settings: Settings) -> str:
    """Return the text that shows a new secret once and where it must be set next."""
    replacing = ", replacing the old one" if replaced else ""
    return (
        f"release-bot generated a new webhook secret and stored it in its database{replacing}.\n"
        "Paste it into your GitHub App's settings (General > Webhook > Webhook secret):\n\n"
        f"{render_webhook_settings(secret, settings)}\n"
        "The GitHub App needs this new value. Then restart every release-bot serve that uses this\n"
        "database, because each reads the secret when it starts. Until both are done, deliveries\n"
        "fail the signature check with 401. Redeliver them from Recent Deliveries on the App's\n"
        "Advanced settings page, or let the redelivery sweep ask for them (it runs when\n"
        "GITHUB_APP_ID and the private key are set).\n"
    )
