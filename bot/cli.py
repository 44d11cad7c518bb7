"""The `release-bot` command: serve, database migrations, replay of deliveries, metric points,
the stored webhook secret, and the commands that read stored runs and statistics."""

from __future__ import annotations

import typer

from bot.cli_backfill import BACKFILL_HELP, backfill
from bot.cli_common import check_address_free, check_database, fail, redact, settings_or_exit
from bot.cli_metric import metric_app
from bot.cli_replay import REPLAY_HELP, replay
from bot.cli_reports import runs, stats
from bot.cli_webhook_secret import webhook_secret_app

# `settings_or_exit` and `fail` are imported from here by bot.cli_metric.
__all__ = ["app", "fail", "main", "settings_or_exit"]

app = typer.Typer(
    help="release-bot: CI and release observability for GitHub Actions.", no_args_is_help=True
)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(metric_app, name="metric")
app.add_typer(webhook_secret_app, name="webhook-secret")
app.command(help=REPLAY_HELP)(replay)
app.command()(runs)
app.command()(stats)
app.command(help=BACKFILL_HELP)(backfill)


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to listen on (default: HOST, else 127.0.0.1)."),
    port: int = typer.Option(None, help="TCP port (default: PORT, else 8000)."),
) -> None:
    """Apply migrations, then run the HTTP server and the background worker."""
    import uvicorn

    from bot.app import create_app

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = settings_or_exit(overrides)
    # Checked first, so that a second `serve` on the same port starts nothing.
    check_address_free(settings.host, settings.port)
    check_database(settings)
    address = f"http://{settings.host}:{settings.port}"
    typer.echo(f"release-bot listening on {address} (database: {redact(settings.database_url)})")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


@app.command()
def worker() -> None:
    """Apply migrations, then process stored deliveries and send queued messages, without HTTP.

    For a server started with WORKER_ENABLED=false: the delivery worker then runs in this
    process, with its own GIL. It finds new deliveries by polling every WORKER_POLL_SECONDS.
    Stop it with SIGTERM or Ctrl-C; it finishes its batch first.
    """
    import signal
    import threading

    from bot.background import build_background
    from bot.migrate import upgrade_at_start
    from storage.db import create_db_engine

    settings = settings_or_exit()
    check_database(settings)
    upgrade_at_start(settings)
    engine = create_db_engine(settings.database_url)
    delivery_worker, outbox_worker = build_background(engine, settings)
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    delivery_worker.start()
    outbox_worker.start()
    typer.echo(f"release-bot worker processing deliveries (database: {redact(settings.database_url)})")
    while not stop.wait(1.0):
        pass
    delivery_worker.stop()
    outbox_worker.stop()
    engine.dispose()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("heads", help="Target revision.")) -> None:
    """Apply the database migrations up to REVISION."""
    from storage.db import upgrade_database

    settings = settings_or_exit()
    check_database(settings)
    upgrade_database(settings.database_url, revision)
    typer.echo(f"database at {redact(settings.database_url)} is at revision {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: str = typer.Argument(..., help="Target revision, such as base."),
) -> None:
    """Revert the database migrations down to REVISION."""
    from storage.db import downgrade_database

    settings = settings_or_exit()
    check_database(settings)
    downgrade_database(settings.database_url, revision)
    typer.echo(f"database at {redact(settings.database_url)} is at revision {revision}")


def main() -> None:
    """Entry point of the console script."""
    app(prog_name="release-bot")


if __name__ == "__main__":
    main()
