"""The `release-bot` command: serve, database migrations, and the commands that read stored data."""

from __future__ import annotations

import sys

import typer

from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.logs import configure_logging

app = typer.Typer(help="release-bot: CI and release observability for GitHub Actions.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def settings_or_exit(**overrides: object) -> Settings:
    """Load the settings, or print what is wrong and exit with status 2."""
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        typer.echo(f"release-bot: configuration error:\n{exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to listen on [default: HOST or 127.0.0.1]."),
    port: int = typer.Option(None, help="TCP port [default: PORT or 8000]."),
) -> None:
    """Apply migrations, then run the HTTP server and the background worker."""
    import uvicorn

    from bot.app import create_app

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = settings_or_exit(**overrides)
    typer.echo(f"release-bot listening on http://{settings.host}:{settings.port} (database: {redact(settings.database_url)})")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("heads", help="Target revision.")) -> None:
    """Apply the database migrations up to REVISION."""
    from storage.db import upgrade_database

    settings = settings_or_exit()
    upgrade_database(settings.database_url, revision)
    typer.echo(f"database at {redact(settings.database_url)} is at revision {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, such as base.")) -> None:
    """Revert the database migrations down to REVISION."""
    from storage.db import downgrade_database

    settings = settings_or_exit()
    downgrade_database(settings.database_url, revision)
    typer.echo(f"database at {redact(settings.database_url)} is at revision {revision}")


def redact(database_url: str) -> str:
    """Return the URL with its password hidden, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)


def main() -> None:
    """Entry point of the console script."""
    app(prog_name="release-bot")


if __name__ == "__main__":
    sys.exit(main())
