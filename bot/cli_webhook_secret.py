"""`release-bot webhook-secret`: print or replace the webhook secret that `serve` generated.

The secret is stored in the bot's database (the `app_state` table) when GITHUB_WEBHOOK_SECRET
is unset. With GITHUB_WEBHOOK_SECRET set, the bot uses that value, so these commands stop.
"""

from __future__ import annotations

import typer

from bot.cli_common import fail, read_database, redact, settings_or_exit, write_database
from bot.config import Settings
from bot.secrets import (
    read_stored_secret,
    render_rotated_secret,
    render_webhook_settings,
    rotate_stored_secret,
)

webhook_secret_app = typer.Typer(
    help="Print or replace the webhook secret that serve generated and stored in the database.",
    no_args_is_help=True,
)


def reject_configured_secret(settings: Settings, fix: str) -> None:
    """Exit with status 1 when GITHUB_WEBHOOK_SECRET is set, because the stored secret is then unused."""
    if settings.github_webhook_secret is not None:
        raise fail(
            "GITHUB_WEBHOOK_SECRET is set, so the bot verifies deliveries with that value and "
            f"ignores any stored secret; {fix}"
        )


@webhook_secret_app.command("show")
def show() -> None:
    """Print the stored webhook secret and the webhook URL to paste into the GitHub App."""
    settings = settings_or_exit(quiet=True)
    reject_configured_secret(settings, "read the value where it is set (the environment or .env)")

    secret = read_database(settings, read_stored_secret)

    if secret is None:
        raise fail(
            f"no webhook secret is stored in {redact(settings.database_url)}: `release-bot serve` "
            "generates one at its first start when GITHUB_WEBHOOK_SECRET is unset"
        )
    typer.echo(render_webhook_settings(secret, settings), nl=False)


@webhook_secret_app.command("rotate")
def rotate() -> None:
    """Generate a new webhook secret, store it in place of the old one, and print it once."""
    settings = settings_or_exit(quiet=True)
    reject_configured_secret(
        settings,
        "to change it, set a new value there and in the GitHub App, or unset it and run this "
        "command again",
    )

    secret, replaced = write_database(settings, rotate_stored_secret)

    typer.echo(render_rotated_secret(secret, replaced, settings), nl=False)
