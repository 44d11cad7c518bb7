"""Schema migrations at server start, run in a child process so that the server never imports Alembic.

Alembic, with the Mako and Pygments packages it imports, adds about 12 MB to the resident
memory of the process that runs the migrations, and CPython keeps that memory after they end.
So the server first compares the database's revisions with the heads of the packaged
migrations, which it reads from the migration files without Alembic. Only when they differ does
it run `python -m bot.migrate`, which applies the migrations with storage.db.upgrade_database
and exits.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.errors import BotError
from storage.db import MIGRATIONS_DIR, create_db_engine, upgrade_database

logger = logging.getLogger(__name__)

VERSIONS_DIR = MIGRATIONS_DIR / "versions"
# A string literal in single or double quotes.
QUOTED = re.compile(r"(['\"])([^'\"]*)\1")
# Alembic's default version table, which storage/migrations/env.py keeps.
VERSION_TABLE = "alembic_version"


class MigrationError(BotError):
    """The child process that applies the migrations failed."""


def read_revision_ids(path: Path) -> tuple[str, tuple[str, ...]] | None:
    """Return a migration file's `revision` and its `down_revision` ids, or None if either is not a literal.

    The file is read with regular expressions, not `ast`: CPython 3.11 raises SystemError
    ("AST constructor recursion depth mismatch") when two threads build syntax trees at once,
    and the server checks the heads in a worker thread.
    """
    text_of_file = path.read_text(encoding="utf-8")
    values: dict[str, str] = {}
    for name in ("revision", "down_revision"):
        found = re.search(rf"^{name}\b[^=\n]*=\s*(.+?)\s*$", text_of_file, re.MULTILINE)
        if found is None:
            return None
        values[name] = found.group(1)

    revision = QUOTED.fullmatch(values["revision"])
    if revision is None:
        return None
    down = values["down_revision"]
    if down == "None":
        return revision.group(2), ()
    single = QUOTED.fullmatch(down)
    if single is not None:
        return revision.group(2), (single.group(2),)
    sequence = re.fullmatch(r"[(\[]\s*(.*?)\s*,?\s*[)\]]", down)
    if sequence is None:
        return None
    items = [item.strip() for item in sequence.group(1).split(",") if item.strip()]
    parents = [QUOTED.fullmatch(item) for item in items]
    if not items or any(parent is None for parent in parents):
        return None
    return revision.group(2), tuple(parent.group(2) for parent in parents if parent is not None)


def migration_heads(versions_dir: Path = VERSIONS_DIR) -> frozenset[str] | None:
    """Return the head revisions of the packaged migrations, or None if a file cannot be read without Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions_dir.glob("*.py")):
        if path.name == "__init__.py":
            continue
        ids = read_revision_ids(path)
        if ids is None:
            return None
        revisions.add(ids[0])
        parents.update(ids[1])
    return frozenset(revisions - parents)


def database_revisions(database_url: str) -> frozenset[str]:
    """Return the revisions stored in the database's version table; empty for a new database."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(VERSION_TABLE):
                return frozenset()
            rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
            return frozenset(str(row[0]) for row in rows)
    finally:
        engine.dispose()


def is_schema_current(database_url: str) -> bool:
    """Tell whether the database is at exactly the heads of the packaged migrations."""
    heads = migration_heads()
    return heads is not None and database_revisions(database_url) == heads


def is_in_memory(database_url: str) -> bool:
    """Tell whether the URL names an in-memory SQLite database, which no other process can open."""
    url = make_url(database_url)
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def upgrade_at_start(settings: Settings) -> None:
    """Bring the database to the newest schema, in a child process unless it is already current."""
    database_url = settings.database_url
    if is_in_memory(database_url):
        upgrade_database(database_url)
        return
    if is_schema_current(database_url):
        logger.debug("database schema is current")
        return

    # The URL goes through standard input, so that its password shows in no process listing.
    # The child logs at this process's level: WARNING under a bare `uvicorn`, LOG_LEVEL under `serve`.
    request = {
        "database_url": database_url,
        "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()),
        "log_format": settings.log_format,
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.migrate"], input=json.dumps(request), text=True, check=False
    )
    if result.returncode != 0:
        raise MigrationError(
            f"the database migrations failed (`python -m bot.migrate` exited with status "
            f"{result.returncode}); the error is in the log above"
        )
    logger.info("database schema upgraded in a child process")


def main() -> None:
    """Apply the migrations to the database named on standard input, logging to standard error."""
    from bot.logs import configure_logging

    request = json.loads(sys.stdin.read())
    configure_logging(request.get("log_level", "INFO"), request.get("log_format", "text"))
    upgrade_database(request["database_url"])


if __name__ == "__main__":
    main()
