"""Helpers shared by the `release-bot` commands: settings, errors, database access and output."""

from __future__ import annotations

import errno
import json
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session

from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.logs import configure_logging

# rich is imported by the commands that print tables, so that `serve` does not keep it in memory.
if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")


def settings_or_exit(
    overrides: dict[str, object] | None = None, *, quiet: bool = False
) -> Settings:
    """Load the settings, or print what is wrong and exit with status 2.

    With `quiet`, logging starts at WARNING (or DEBUG when LOG_LEVEL is DEBUG), so that the
    INFO lines of migrations do not mix with a command's own output.
    """
    try:
        settings = load_settings(**(overrides or {}))
    except ConfigError as exc:
        typer.echo(f"release-bot: configuration error:\n{exc}", err=True)
        raise typer.Exit(2) from None
    level = settings.log_level
    if quiet and level == "INFO":
        level = "WARNING"
    configure_logging(level, settings.log_format)
    return settings


def fail(message: str, status: int = 1) -> typer.Exit:
    """Print an error to standard error and return the Exit to raise."""
    typer.echo(f"release-bot: {message}", err=True)
    return typer.Exit(status)


def check_database(settings: Settings) -> None:
    """Connect once, so that an unreachable database is reported in one line, not a traceback."""
    from storage.db import create_db_engine

    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise fail(
            f"cannot connect to the database {redact(settings.database_url)}: {exc.orig}; "
            "check DATABASE_URL and that the database server is running"
        ) from None
    finally:
        engine.dispose()


def check_address_free(host: str, port: int) -> None:
    """Bind the address `serve` will listen on, and close it again, or exit with what to change.

    uvicorn binds only after the app's start-up (migrations, worker, scheduler), so a port in
    use would otherwise stop `serve` only then, with status 3. The probe binds as asyncio's
    create_server, which uvicorn uses, does: every address the host resolves to, with
    SO_REUSEADDR, and IPv6 sockets for IPv6 only.

    NOTE: another program can still take the port between this check and uvicorn's bind;
    uvicorn then exits with status 3 after the start-up, as before.
    """
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise fail(
            f"cannot listen on {address}: the host name {host!r} does not resolve ({exc.strerror}); "
            "set --host or HOST to an IP address or a name of this machine"
        ) from None

    for family, kind, protocol, _, socket_address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(socket_address)
            except OSError as exc:
                raise fail(f"cannot listen on {address}: {listen_error_fix(exc, host)}") from None


def listen_error_fix(error: OSError, host: str) -> str:
    """Return why binding failed and which option or setting to change."""
    if error.errno == errno.EADDRINUSE:
        return (
            "the address is already in use, perhaps by another release-bot serve; stop that "
            "process, or choose another port with --port or the PORT setting"
        )
    if error.errno == errno.EACCES:
        return (
            "permission denied, because ports below 1024 need extra privileges; choose a port "
            "from 1024 up with --port or the PORT setting"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine; set --host or the HOST setting to one of "
            "its addresses, or to 0.0.0.0 for all of them"
        )
    return f"{error.strerror}; check --host and --port, or the HOST and PORT settings"


def check_repo_option(repo: str | None) -> None:
    if repo is not None and repo.count("/") != 1:
        raise fail(f"invalid --repo {repo!r}: use OWNER/NAME, such as octo-org/widget", 2)


def read_database(settings: Settings, load: Callable[[Session], T]) -> T:
    """Run a read function on the bot's database, with a one-line error if it cannot."""
    from storage.db import read_session

    with reading_engine(settings) as engine, read_session(engine) as session:
        try:
            return load(session)
        except (OperationalError, ProgrammingError) as exc:
            raise fail(
                f"cannot read the database {redact(settings.database_url)}: {exc.orig}; "
                "run `release-bot db upgrade` if its tables are missing"
            ) from None


def write_database(settings: Settings, change: Callable[[Session], T]) -> T:
    """Run a function that changes the bot's database, then commit, with a one-line error if it cannot."""

    def change_and_commit(session: Session) -> T:
        result = change(session)
        session.commit()
        return result

    return read_database(settings, change_and_commit)


@contextmanager
def reading_engine(settings: Settings) -> Iterator[Engine]:
    """Open the database for reading; a SQLite file that does not exist is not created."""
    from storage.db import create_db_engine

    url = make_url(settings.database_url)
    database = url.database or ""
    is_file_database = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if is_file_database and not Path(database).expanduser().is_file():
        raise fail(
            f"no database at {database}: run `release-bot serve` or `release-bot replay` in "
            "this directory first, or set DATABASE_URL to the bot's database"
        )
    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def console() -> Console:
    """Return a console on the current standard output that never highlights values.

    Output to a pipe or file is 160 columns wide (or COLUMNS), not rich's default of 80, so
    that tables keep one line per row.
    """
    from rich.console import Console

    return Console(highlight=False, width=shutil.get_terminal_size((160, 24)).columns)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def terminal_text(message: str) -> str:
    from bot.render.terminal import printable

    return printable(message)


def redact(database_url: str) -> str:
    """Return the URL with its password hidden, for printing."""
    return make_url(database_url).render_as_string(hide_password=True)
