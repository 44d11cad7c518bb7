"""`release-bot replay`: feed stored webhook deliveries through the inbox and the worker."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli_common import check_database, fail, settings_or_exit, terminal_text
from bot.config import Settings

if TYPE_CHECKING:
    from bot.replay import RecordedDelivery, ReplayOutcome

# Typer's rich help keeps the line breaks of the text, so each paragraph is one line here.
REPLAY_HELP = "\n\n".join(
    [
        "Feed stored webhook deliveries through the same inbox and worker as live ones.",
        "A file contains GitHub's record of a delivery (GET /app/hook/deliveries/ID), or an "
        'object {"headers": ..., "payload": ...}, or a JSON list of either.',
        "Exit status: 0 when every delivery was processed or skipped as a duplicate; 1 when a "
        "file is unreadable (then nothing is replayed) or a delivery was rejected, invalid or "
        "failed; 2 for invalid options or settings.",
    ]
)


def replay(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH",
            help="Delivery files, or directories whose *.json files are read in path order.",
        ),
    ],
    url: Annotated[
        str | None,
        typer.Option(
            help="Send the deliveries to the bot at this URL instead of processing them here."
        ),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            help="Webhook secret that signs the deliveries sent to --url (default: "
            "GITHUB_WEBHOOK_SECRET, else the secret stored in the bot's database)."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Process deliveries that are already in the inbox again."),
    ] = False,
) -> None:
    """Feed stored webhook deliveries through the same inbox and worker as live ones."""
    from bot import replay as replaying

    settings = settings_or_exit(quiet=True)
    if url is not None and force:
        raise fail(
            "--force works only without --url: a running bot keeps the first copy of each "
            "delivery id, so process the inbox again where the bot's database is",
            2,
        )
    target = None
    if url is not None:
        try:
            target = replaying.webhook_url(url)
        except ValueError as exc:
            raise fail(str(exc), 2) from None

    recorded, problems = replaying.read_deliveries(paths)
    if problems:
        for problem in problems:
            typer.echo(f"release-bot: {terminal_text(problem)}", err=True)
        raise fail(f"nothing was replayed: {len(problems)} unreadable path(s)")

    if target is None:
        outcomes = replay_here(settings, recorded, force=force)
        summary = f"replayed {len(recorded)} deliveries"
    else:
        outcomes = replay_there(settings, target, secret, recorded)
        summary = f"sent {len(outcomes)} of {len(recorded)} deliveries to {target}"

    print_outcomes(outcomes)
    counts = Counter(outcome.outcome for outcome in outcomes)
    typer.echo(f"{summary}: " + ", ".join(f"{count} {name}" for name, count in counts.items()))
    if len(outcomes) < len(recorded) or not all(outcome.ok for outcome in outcomes):
        raise typer.Exit(1)


def replay_here(
    settings: Settings, recorded: list[RecordedDelivery], *, force: bool
) -> list[ReplayOutcome]:
    """Migrate the database, then insert and process the deliveries in this process."""
    from bot.replay import replay_in_process
    from storage.db import create_db_engine, upgrade_database

    check_database(settings)
    upgrade_database(settings.database_url)
    engine = create_db_engine(settings.database_url)
    try:
        return replay_in_process(engine, settings, recorded, force=force)
    finally:
        engine.dispose()


def replay_there(
    settings: Settings, target: str, secret: str | None, recorded: list[RecordedDelivery]
) -> list[ReplayOutcome]:
    """Sign and POST the deliveries to a running bot; stop at the first connection error."""
    import httpx

    from bot.replay import find_webhook_secret, replay_over_http

    secret = secret or find_webhook_secret(settings)
    if not secret:
        raise fail(
            "no webhook secret to sign the deliveries with: pass --secret, set "
            "GITHUB_WEBHOOK_SECRET, or set DATABASE_URL to the bot's database, where it stores "
            "the secret it generated",
            2,
        )
    with httpx.Client(timeout=30.0) as client:
        outcomes, problem = replay_over_http(client, target, secret, recorded)
    if problem:
        print_outcomes(outcomes)
        raise fail(terminal_text(problem))
    return outcomes


def print_outcomes(outcomes: list[ReplayOutcome]) -> None:
    """Print one line per delivery: id, event and action, outcome, and the detail if any."""
    labels = [
        outcome.delivery.event + (f".{outcome.delivery.action}" if outcome.delivery.action else "")
        for outcome in outcomes
    ]
    width = max((len(label) for label in labels), default=0)
    for outcome, label in zip(outcomes, labels, strict=True):
        line = f"{outcome.delivery.delivery_id}  {label.ljust(width)}  {outcome.outcome}"
        if outcome.detail:
            line += f": {outcome.detail}"
        if not outcome.ok:
            line += f" ({outcome.delivery.source})"
        typer.echo(terminal_text(line))
