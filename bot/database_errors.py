"""Database errors that mean the database itself is unavailable, and the fix for each.

The webhook endpoint, the JSON API and `/readyz` respond with 503 and the problem's message for
these, and log a WARNING without a traceback. Any other error (a syntax error in a query, a
violated constraint) is a bug, so it keeps its 500 and its traceback.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, OperationalError

from storage.db import DatabaseFileReplaced

# SQLite's primary result codes (https://www.sqlite.org/rescode.html) that come from the
# database file or its lock, not from the statement. SQLITE_ERROR (1) is left out because
# sqlite3 raises it for syntax errors too. Of its errors, only "no such table" counts.
SQLITE_LOCK_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
SQLITE_FILE_CODES = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)
# PostgreSQL's SQLSTATE for a missing table (undefined_table), which psycopg raises as a
# ProgrammingError.
UNDEFINED_TABLE = "42P01"


@dataclass(frozen=True)
class DatabaseProblem:
    """A database problem in words for an HTTP response, with the driver's error for the log."""

    # "unavailable", "locked" or "schema missing" here. `/readyz` and the webhook endpoint
    # add "busy", "timed out" and "check failed".
    kind: str
    cause: str
    fix: str
    # The driver's own message, for the log only: it can name the database host.
    detail: str

    @property
    def message(self) -> str:
        """Return `database KIND: CAUSE; FIX`, the text of a 503 response."""
        return f"database {self.kind}: {self.cause}; {self.fix}"


UNAVAILABLE_FIX = (
    "check that DATABASE_URL names the bot's database and that it is reachable: for PostgreSQL, "
    "that the server runs and accepts connections; for SQLite, that the file and its directory "
    "exist and are writable"
)
LOCKED_FIX = (
    "end the long transaction that holds the lock (another process using the same SQLite file, "
    "such as a `sqlite3` shell), then retry"
)
SCHEMA_FIX = (
    "restart `release-bot serve`, which applies the migrations, or run `release-bot db upgrade`; "
    "if the SQLite file was deleted, restore it from a backup first"
)


def locked(detail: str) -> DatabaseProblem:
    """Return the problem of a database whose write lock another connection holds."""
    return DatabaseProblem("locked", "another connection holds its write lock", LOCKED_FIX, detail)


def unavailable(detail: str) -> DatabaseProblem:
    """Return the problem of a database that cannot be reached or opened."""
    return DatabaseProblem("unavailable", "it cannot be reached or opened", UNAVAILABLE_FIX, detail)


def schema_missing(detail: str) -> DatabaseProblem:
    """Return the problem of a database without the bot's tables."""
    return DatabaseProblem(
        "schema missing",
        "it has no release-bot tables (it was deleted, replaced or never migrated)",
        SCHEMA_FIX,
        detail,
    )


def classify_database_error(exc: BaseException) -> DatabaseProblem | None:
    """Return the database problem an exception reports, or None if it is not one.

    Takes SQLAlchemy's wrapped errors and the drivers' own (the webhook endpoint inserts on
    driver connections).
    """
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    detail = str(orig)

    if isinstance(orig, sqlite3.Error):
        return classify_sqlite_error(orig)
    if type(orig).__module__.startswith("psycopg"):
        import psycopg

        if getattr(orig, "sqlstate", None) == UNDEFINED_TABLE:
            return schema_missing(detail)
        return unavailable(detail) if isinstance(orig, psycopg.OperationalError) else None

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return unavailable(detail)
    # PEP 249 reserves OperationalError for errors of the database's operation, not of the
    # statement. sqlite3, handled above, raises it for syntax errors too.
    if isinstance(exc, OperationalError):
        return unavailable(detail)
    return None


def classify_sqlite_error(error: sqlite3.Error) -> DatabaseProblem | None:
    """Return the database problem a sqlite3 error reports, or None for a faulty statement."""
    detail = str(error)
    if isinstance(error, DatabaseFileReplaced):
        return DatabaseProblem(
            "unavailable",
            "its file was deleted or replaced while the bot ran",
            "restart the bot: on the restored file, or on a new database that it creates",
            detail,
        )
    code = getattr(error, "sqlite_errorcode", None)
    # Extended result codes carry the primary code in their low 8 bits.
    primary = None if code is None else code & 0xFF
    if primary in SQLITE_LOCK_CODES:
        return locked(detail)
    if primary in SQLITE_FILE_CODES:
        return unavailable(detail)
    if isinstance(error, sqlite3.OperationalError) and detail.startswith("no such table"):
        return schema_missing(detail)
    return None


class RepeatLimiter:
    """A limit of one log line per key and interval, with a count of the lines held back.

    It has no lock, because its callers (an async exception handler and `/readyz`) run on the
    event loop.
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._last_logged: dict[str, float] = {}
        self._held_back: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """Tell whether to log a line of `key` now.

        Returns how many lines of `key` were held back since the last one logged, or None to
        hold this one back too.
        """
        now = time.monotonic()
        last = self._last_logged.get(key)
        if last is not None and now - last < self.interval_s:
            self._held_back[key] = self._held_back.get(key, 0) + 1
            return None
        self._last_logged[key] = now
        return self._held_back.pop(key, 0)

    def forget(self, key: str) -> None:
        """Let the next line of `key` through, as for a key never seen."""
        self._last_logged.pop(key, None)
        self._held_back.pop(key, None)
