"""The reference for the ingestion benchmark: a bare ASGI webhook receiver.

It does the least a correct receiver can do: read the body, check the GitHub HMAC signature
over the raw bytes, then one SQLite INSERT and COMMIT per request before the 202 response. The
database is in WAL mode with `synchronous=FULL`, as the bot's webhook inserts are, so each
commit is on disk before its response; `BENCH_SQLITE_SYNCHRONOUS=NORMAL` syncs only at
checkpoints instead. `BENCH_SQLITE_JOURNAL=DELETE` keeps SQLite's default rollback journal,
which is what a receiver gets that sets no pragma at all. No framework, no JSON parsing, no
worker.

Run it with the same uvicorn options as the bot, for example:
`BENCH_SECRET=... BENCH_SQLITE_PATH=/tmp/base.db uvicorn bench.baseline_app:app --no-access-log`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import time
from typing import Any

SECRET = os.environ.get("BENCH_SECRET", "").encode()
DATABASE_PATH = os.environ.get("BENCH_SQLITE_PATH", "baseline.db")
SYNCHRONOUS = os.environ.get("BENCH_SQLITE_SYNCHRONOUS", "FULL")
JOURNAL_MODE = os.environ.get("BENCH_SQLITE_JOURNAL", "WAL")

SCHEMA = """
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY,
    delivery_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at REAL NOT NULL
)
"""


def open_database(path: str) -> sqlite3.Connection:
    """Open the database in autocommit mode with the chosen journal and sync level, and the table."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if JOURNAL_MODE not in ("WAL", "DELETE"):
        raise SystemExit(f"BENCH_SQLITE_JOURNAL must be WAL or DELETE, got {JOURNAL_MODE!r}")
    connection.execute(f"PRAGMA journal_mode={JOURNAL_MODE}")
    if SYNCHRONOUS not in ("FULL", "NORMAL"):
        raise SystemExit(f"BENCH_SQLITE_SYNCHRONOUS must be FULL or NORMAL, got {SYNCHRONOUS!r}")
    connection.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
    connection.execute("PRAGMA busy_timeout=30000")
    connection.execute(SCHEMA)
    return connection


connection = open_database(DATABASE_PATH)


async def respond(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Verify and store one webhook delivery; the blocking insert runs on the event loop."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                connection.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/healthz":
        await respond(send, 200, b'{"status":"ok"}')
        return

    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)

    headers = dict(scope["headers"])
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), headers.get(b"x-hub-signature-256", b"")):
        await respond(send, 401, b'{"error":"invalid signature"}')
        return

    delivery_id = headers.get(b"x-github-delivery", b"").decode()
    event = headers.get(b"x-github-event", b"").decode()
    # A statement outside BEGIN commits by itself: one insert, one commit.
    cursor = connection.execute(
        "INSERT INTO delivery (delivery_id, event, body, received_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (delivery_id) DO NOTHING",
        (delivery_id, event, body, time.time()),
    )
    if cursor.rowcount == 0:
        await respond(send, 200, b'{"status":"duplicate"}')
        return
    await respond(send, 202, b'{"status":"accepted"}')
