"""The database check of `GET /readyz`, bounded in time so that a load balancer gets a response.

On SQLite the check takes the write lock for a moment, as a webhook insert would, because a
bot that cannot write cannot store deliveries. It gives up after READY_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, text
from sqlalchemy.pool import StaticPool

from bot.database_errors import DatabaseProblem, RepeatLimiter, classify_database_error, locked
from storage.db import check_database_file, connect_sqlite_file, sqlite_write_gate

logger = logging.getLogger(__name__)

# How long `/readyz` waits for the database before it reports it not ready. A probe that
# waits longer than the load balancer's own probe timeout fails without a reason, so set
# that timeout to 3 s or more (docs/deploy.md).
READY_TIMEOUT_SECONDS = 2.0


def check_database(engine: Engine, timeout_s: float) -> DatabaseProblem | None:
    """Check that the bot's schema is there and the database takes writes; return what is wrong."""
    gate = sqlite_write_gate(engine)
    try:
        if gate is not None and not isinstance(engine.pool, StaticPool):
            check_database_file(engine)
            return check_sqlite_write_lock(engine, timeout_s)
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
            # A database recreated empty still runs SELECT 1, yet every webhook would fail.
            connection.execute(text("SELECT 1 FROM delivery LIMIT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        problem = classify_database_error(exc)
        if problem is None:
            logger.exception("database check failed with an unexpected error")
            cause = f"unexpected {type(exc).__name__}"
            return DatabaseProblem("check failed", cause, "see the traceback in the bot's log", str(exc))
        return problem


def check_sqlite_write_lock(engine: Engine, timeout_s: float) -> DatabaseProblem | None:
    """Take SQLite's write lock and read the delivery table, waiting at most `timeout_s`.

    The connection is opened for this check and closed after it, so its short busy timeout
    never reaches a connection of the pool.
    """
    gate = sqlite_write_gate(engine)
    assert gate is not None
    deadline = time.monotonic() + timeout_s
    # A connection of its own, opened before the gate is taken: a pool connection could be
    # slow to come while the gate holds back every writer, and it could still be open on a
    # file deleted since.
    dbapi_connection = connect_sqlite_file(engine)
    try:
        # A thread of this process that holds the lock (the delivery writer waiting out another
        # process's transaction, say) makes the check wait here, not in SQLite's busy handler.
        if not gate.acquire(timeout_s=timeout_s):
            return locked(f"a transaction of this process held the write lock for over {timeout_s:g} s")
        try:
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            dbapi_connection.execute(f"PRAGMA busy_timeout={remaining_ms}")
            dbapi_connection.execute("BEGIN IMMEDIATE")
            try:
                dbapi_connection.execute("SELECT 1 FROM delivery LIMIT 1")
            finally:
                dbapi_connection.execute("ROLLBACK")
        finally:
            gate.release()
    finally:
        dbapi_connection.close()
    return None


class DatabaseProbe:
    """The database check of `/readyz`: one run at a time, with a result within a bound.

    Probes that arrive while a check runs wait for that check, so a database that hangs holds
    one thread, not one per probe. A WARNING is logged when the problem changes, and a
    repeated one at most once a minute.
    """

    def __init__(self, engine: Engine, timeout_s: float = READY_TIMEOUT_SECONDS) -> None:
        self.engine = engine
        self.timeout_s = timeout_s
        self._check: asyncio.Future[DatabaseProblem | None] | None = None
        self._last_kind: str | None = None
        self._warnings = RepeatLimiter()

    async def problem(self) -> DatabaseProblem | None:
        """Return what keeps the database from being ready, or None when it is ready."""
        if self._check is None or self._check.done():
            check = run_in_threadpool(check_database, self.engine, self.timeout_s)
            self._check = asyncio.ensure_future(check)
        try:
            # The check bounds its own waits, and this bound covers a connect that hangs.
            problem = await asyncio.wait_for(asyncio.shield(self._check), self.timeout_s + 1.0)
        except TimeoutError:
            problem = DatabaseProblem(
                "timed out",
                f"no answer within {self.timeout_s + 1.0:g} s",
                "check that the database server runs and is reachable from this host",
                "no answer",
            )
        self._report(problem)
        return problem

    def _report(self, problem: DatabaseProblem | None) -> None:
        if problem is None:
            if self._last_kind is not None:
                logger.info("database ready again")
            self._last_kind = None
            return

        if problem.kind != self._last_kind:
            self._warnings.forget(problem.kind)
        self._last_kind = problem.kind
        held_back = self._warnings.allow(problem.kind)
        if held_back is not None:
            logger.warning(
                "database not ready: %s", problem.message,
                extra={"error": problem.detail, "repeats_held_back": held_back},
            )
