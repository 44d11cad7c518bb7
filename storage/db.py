"""Engine and session setup, and schema migrations, for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

# Alembic (with Mako and Pygments) takes about 10 MB of memory once imported, so it is
# imported only by the functions that migrate.
if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# How long a SQLite writer waits for the lock before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_db_engine(database_url: str, *, pool_size: int = 10) -> Engine:
    """Create an engine; on SQLite with WAL, a busy timeout and write-ahead transactions."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(
            database_url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True
        )

    database = url.database or ""
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        database_url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        **({"poolclass": StaticPool} if database in ("", ":memory:") else {}),
    )
    gate = SQLiteWriteGate(SQLITE_BUSY_TIMEOUT_MS / 1000)
    WRITE_GATES[engine.dialect] = gate
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", lambda connection: _begin_immediate(connection, gate))
    event.listen(engine, "commit", lambda connection: _end_transaction(connection, gate))
    event.listen(engine, "rollback", lambda connection: _end_transaction(connection, gate))
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling issues BEGIN late and breaks SAVEPOINT; SQLAlchemy
    # documents turning it off and emitting BEGIN from the "begin" event instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def psycopg_conninfo(engine: Engine) -> str:
    """Return the libpq connection string of a PostgreSQL engine's URL, for a psycopg connection."""
    from psycopg.conninfo import make_conninfo

    url = engine.url
    arguments = url.translate_connect_args(username="user", database="dbname")
    arguments = {key: str(value) for key, value in arguments.items()}
    options = {key: value for key, value in url.query.items() if isinstance(value, str)}
    return make_conninfo(**arguments, **options)


def connect_sqlite_file(engine: Engine) -> sqlite3.Connection:
    """Open a new driver connection to a SQLite engine's file, outside its pool.

    It is set up as the pool's connections are.
    """
    arguments, options = engine.dialect.create_connect_args(engine.url)
    options = {**options, "check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    dbapi_connection = sqlite3.connect(*arguments, **options)
    _configure_sqlite_connection(dbapi_connection, None)
    return dbapi_connection


class DatabaseFileReplaced(sqlite3.OperationalError):
    """The SQLite file was deleted or replaced after the bot opened it."""


def file_identity(path: str) -> tuple[int, int] | None:
    """Return the device and inode of a file, or None if it does not exist."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def remember_database_file(engine: Engine) -> None:
    """Note which file a SQLite engine's path names now, for `check_database_file`.

    Nothing is noted for other databases, in-memory ones, or a file that does not exist yet.
    """
    if engine.dialect.name != "sqlite" or isinstance(engine.pool, StaticPool):
        return
    arguments, options = engine.dialect.create_connect_args(engine.url)
    if options.get("uri"):
        return
    path = str(arguments[0])
    identity = file_identity(path)
    if identity is not None:
        DATABASE_FILES[engine.dialect] = (path, identity)


def check_database_file(engine: Engine) -> None:
    """Raise DatabaseFileReplaced if the SQLite file noted at start is no longer at its path.

    A connection open on a deleted file goes on writing into it, and what it writes is gone
    when the connection closes. A new file at the path shares the old one's write-ahead log
    file, which SQLite's documentation lists among the ways to corrupt a database.
    """
    noted = DATABASE_FILES.get(engine.dialect)
    if noted is None:
        remember_database_file(engine)
    elif file_identity(noted[0]) != noted[1]:
        raise DatabaseFileReplaced(
            f"the SQLite file {noted[0]} was deleted or replaced after the bot opened it"
        )


def configure_inbox_connection(dbapi_connection: Any, *, busy_timeout_ms: int) -> None:
    """Make a SQLite connection's commits durable on disk, with the given busy timeout."""
    dbapi_connection.execute("PRAGMA synchronous=FULL")
    dbapi_connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")


def _begin_immediate(connection: Any, gate: SQLiteWriteGate) -> None:
    # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
    # another connection wrote in between; IMMEDIATE takes the write lock first and waits.
    if connection.get_execution_options().get(READ_ONLY_OPTION):
        # A reader in WAL mode reads the last commit and does not wait for the write lock.
        connection.exec_driver_sql("BEGIN")
        return
    background = connection.get_execution_options().get(PRIORITY_OPTION) == BACKGROUND
    if gate.acquire(background=background):
        connection.info[GATE_HELD_KEY] = True
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        _end_transaction(connection, gate)
        raise


def _end_transaction(connection: Any, gate: SQLiteWriteGate) -> None:
    # SQLAlchemy fires these events just before it sends COMMIT or ROLLBACK, so the next
    # writer's BEGIN IMMEDIATE can meet the lock for the moment the COMMIT takes; SQLite's
    # busy handler then retries after 1 ms.
    try:
        is_held = connection.info.pop(GATE_HELD_KEY, False)
    except (exc.PendingRollbackError, exc.ResourceClosedError):
        # An invalidated connection has lost its info. Releasing a gate that another
        # transaction holds costs only order, since SQLite's own lock still admits one writer.
        is_held = True
    if is_held:
        gate.release()


# The connection `info` key and the execution option that marks background writers.
GATE_HELD_KEY = "release_bot_sqlite_gate_held"
PRIORITY_OPTION = "release_bot_write_priority"
BACKGROUND = "background"
# The execution option that marks transactions that only read.
READ_ONLY_OPTION = "release_bot_read_only"

# Keyed by dialect because each engine has its own, shared with the engines that
# `execution_options` derives from it, and it outlives `dispose`.
WRITE_GATES: weakref.WeakKeyDictionary[Any, SQLiteWriteGate] = weakref.WeakKeyDictionary()
# The path and identity of each SQLite engine's file when the bot started, keyed the same way.
DATABASE_FILES: weakref.WeakKeyDictionary[Any, tuple[str, tuple[int, int] | None]] = weakref.WeakKeyDictionary()


class SQLiteWriteGate:
    """Hands SQLite's one write lock from thread to thread within this process, by priority.

    Every transaction here starts with BEGIN IMMEDIATE and so holds the database's write lock
    until it ends. Threads that wait for that lock inside SQLite poll from its busy handler,
    which sleeps 1, 2, 5, 10 and up to 100 ms between tries (`sqliteDefaultBusyCallback` in
    SQLite's main.c), and a thread that writes in a loop takes the lock again before a
    sleeping waiter wakes. Here they wait on a condition instead and wake when
    the holder ends its transaction. A background transaction (the delivery worker's) also
    waits while any other transaction is waiting, and reads `has_waiters` to end its batch
    early. The gate only orders the waiting: SQLite's lock still admits one writer at a time,
    and between processes only its busy timeout applies.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._condition = threading.Condition()
        self._is_held = False
        self._waiting = 0

    @property
    def has_waiters(self) -> bool:
        """Tell whether a foreground transaction is waiting for the lock."""
        return self._waiting > 0

    def acquire(self, *, background: bool = False, timeout_s: float | None = None) -> bool:
        """Wait for the lock; return False on timeout, leaving the wait to SQLite's busy handler.

        A caller that passes its own `timeout_s` reports the timeout itself.
        """
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        with self._condition:
            if not background:
                self._waiting += 1
            try:
                while self._is_held or (background and self._waiting):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        if timeout_s is None:
                            logger.warning("sqlite write gate wait timed out after %.0f s", self.timeout_s)
                        return False
                    self._condition.wait(remaining)
                self._is_held = True
                return True
            finally:
                if not background:
                    self._waiting -= 1

    def try_acquire(self) -> bool:
        """Take the lock only if it is free and no other transaction waits for it."""
        with self._condition:
            if self._is_held or self._waiting:
                return False
            self._is_held = True
            return True

    def release(self) -> None:
        """Let the next waiting transaction begin."""
        with self._condition:
            self._is_held = False
            self._condition.notify_all()


def upsert_insert(dialect_name: str) -> Callable[[Any], Any]:
    """Return the INSERT constructor with ON CONFLICT clauses of PostgreSQL or SQLite."""
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return postgresql_insert if dialect_name == "postgresql" else sqlite_insert


def sqlite_write_gate(engine: Engine) -> SQLiteWriteGate | None:
    """Return the write gate of a SQLite engine, or None for other databases."""
    return WRITE_GATES.get(engine.dialect)


def background_engine(engine: Engine) -> Engine:
    """Return the engine for a background writer, whose SQLite transactions yield to others."""
    return engine.execution_options(**{PRIORITY_OPTION: BACKGROUND})


def read_only_engine(engine: Engine) -> Engine:
    """Return the engine for transactions that only read.

    On SQLite they begin without taking the write lock, so a long write elsewhere (another
    process's, or the worker's batch) does not delay them. A write in such a transaction can
    fail with "database is locked" at once, so use it only for reads.
    """
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def read_session(engine: Engine) -> Session:
    """Open a session for reads that never commit, on `read_only_engine`.

    It does not flush before its queries: some read functions refresh ORM objects for the
    caller's view (a release stage from its job, say), and a flush would write in a read-only
    transaction. Those changes stay in memory and are dropped when the session closes.
    """
    return Session(read_only_engine(engine), autoflush=False, expire_on_commit=False)


def commit_without_flush_wait(session: Session) -> None:
    """On PostgreSQL, let this transaction's commit return before its WAL reaches the disk.

    For a transaction that may be lost in a server crash because it is redone then: the worker's
    batches are, since a lost batch leaves its deliveries pending. PostgreSQL keeps the
    database consistent either way and writes the WAL out within three `wal_writer_delay`
    (600 ms by default). The commit then no longer waits for the disk, nor makes the webhook
    endpoint's commits wait behind its own.

    NOTE: a message that such a batch queued may already be sent when a crash loses the batch,
    and the redone batch queues it again, so a PostgreSQL crash can repeat a Slack post.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit TO off"))


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Open a session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(database_url: str) -> Config:
    """Build the Alembic configuration for the packaged migrations."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def upgrade_database(database_url: str, revision: str = "heads") -> None:
    """Apply the migrations up to `revision` (default: every head, the newest of each branch)."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)
    logger.info("database schema upgraded", extra={"revision": revision})


def downgrade_database(database_url: str, revision: str) -> None:
    """Revert the migrations down to `revision`."""
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)
