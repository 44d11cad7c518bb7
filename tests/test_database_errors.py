"""Which database errors count as the database being unavailable, and the repeat limit of their
WARNING lines."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from bot.database_errors import RepeatLimiter, classify_database_error


def sqlite_error(tmp_path: Path, action: Callable[[Path], object]) -> sqlite3.Error:
    """Return the error sqlite3 raises for `action(tmp_path)`."""
    with pytest.raises(sqlite3.Error) as caught:
        action(tmp_path)
    return caught.value


def open_directory(tmp_path: Path) -> object:
    return sqlite3.connect(tmp_path).execute("SELECT 1")


def query_missing_table(tmp_path: Path) -> object:
    return sqlite3.connect(tmp_path / "empty.db").execute("SELECT 1 FROM delivery")


def run_syntax_error(tmp_path: Path) -> object:
    return sqlite3.connect(tmp_path / "empty.db").execute("SELEC 1")


def write_while_locked(tmp_path: Path) -> object:
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(tmp_path / "locked.db", isolation_level=None, timeout=0)
    return waiter.execute("BEGIN IMMEDIATE")


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        (open_directory, "unavailable"),
        (query_missing_table, "schema missing"),
        (write_while_locked, "locked"),
        (run_syntax_error, None),
    ],
    ids=["cannot-open", "no-such-table", "busy", "syntax-error"],
)
def test_sqlite_errors(tmp_path: Path, action: Callable[[Path], object], kind: str | None) -> None:
    error = sqlite_error(tmp_path, action)

    for raised in (error, OperationalError("SELECT", {}, error)):
        problem = classify_database_error(raised)
        assert (problem.kind if problem else None) == kind


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (psycopg.OperationalError("connection refused"), "unavailable"),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), "unavailable"),
        (psycopg.errors.UndefinedTable('relation "delivery" does not exist'), "schema missing"),
        (psycopg.errors.SyntaxError('syntax error at or near "FORM"'), None),
        (psycopg.errors.UniqueViolation("duplicate key value"), None),
    ],
    ids=["refused", "admin-shutdown", "undefined-table", "syntax-error", "unique-violation"],
)
def test_postgresql_errors(error: Exception, kind: str | None) -> None:
    for raised in (error, DBAPIError("SELECT", {}, error)):
        problem = classify_database_error(raised)
        assert (problem.kind if problem else None) == kind


def test_other_errors_not_database_problems() -> None:
    assert classify_database_error(RuntimeError("the delivery writer was stopped")) is None
    assert classify_database_error(ProgrammingError("SELECT", {}, Exception("bad statement"))) is None
    problem = classify_database_error(OperationalError("SELECT", {}, Exception("server closed the connection")))
    assert problem is not None
    assert problem.kind == "unavailable"


def test_problem_message_names_fix() -> None:
    problem = classify_database_error(psycopg.OperationalError("connection to server at 10.0.0.5 failed"))

    assert problem is not None
    assert problem.message.startswith("database unavailable: it cannot be reached or opened; check that DATABASE_URL")
    # The driver's text can name hosts, so only `detail`, which goes to the log, carries it.
    assert "10.0.0.5" not in problem.message
    assert problem.detail == "connection to server at 10.0.0.5 failed"


def test_repeat_limiter_counts_held_back_lines() -> None:
    limiter = RepeatLimiter(interval_s=3600)

    assert limiter.allow("locked") == 0
    assert limiter.allow("locked") is None
    assert limiter.allow("locked") is None
    assert limiter.allow("unavailable") == 0

    limiter.interval_s = 0
    assert limiter.allow("locked") == 2
    assert limiter.allow("locked") == 0


def test_repeat_limiter_forget() -> None:
    limiter = RepeatLimiter(interval_s=3600)
    limiter.allow("locked")
    limiter.allow("locked")

    limiter.forget("locked")

    assert limiter.allow("locked") == 0
