"""Group commit for the webhook endpoint: one transaction stores the deliveries of many requests.

While one transaction runs, the requests that arrive queue up; when it commits, the next
transaction stores all of them with one multi-row INSERT. Every request still gets its response
only after the transaction holding its delivery has committed. On SQLite this also keeps a single
connection writing for the endpoint instead of one per thread-pool thread. On PostgreSQL it
pays one commit (and one WAL flush) per batch instead of one per delivery.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine

from storage import deliveries

logger = logging.getLogger(__name__)

# Rows per INSERT transaction; 256 rows of 11 columns stay far below SQLite's limit of
# 32,766 bound parameters per statement.
MAX_BATCH = 256


def store_rows(engine: Engine, rows: list[dict[str, Any]]) -> list[bool]:
    """Insert the rows in one transaction; return, per row, whether its delivery was new."""
    # A Core connection, because the rows need no ORM and a Session doubled the CPU time of a
    # one-row batch on SQLite. The connection's "begin" and "commit" events still take and
    # release the SQLite write gate (storage/db.py).
    with engine.begin() as connection:
        return deliveries.insert_deliveries(session=connection, rows=rows)


def store_rows_one_by_one(engine: Engine, rows: list[dict[str, Any]]) -> list[bool | Exception]:
    """Insert each row in its own transaction, so one bad row fails only its own request."""
    results: list[bool | Exception] = []
    for row in rows:
        try:
            with engine.begin() as connection:
                results.extend(deliveries.insert_deliveries(session=connection, rows=[row]))
        except Exception as exc:  # noqa: BLE001 - handed to the request that sent the row
            results.append(exc)
    return results


class DeliveryWriter:
    """Stores deliveries for the webhook endpoint, batching those of concurrent requests."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._flush_task: asyncio.Task[None] | None = None
        # One thread is enough because one batch is written at a time, and it keeps the
        # endpoint's writes on one pooled connection.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delivery-writer")

    def close(self) -> None:
        """End the writer's thread once its current batch is written."""
        self._executor.shutdown(wait=True)

    async def store(self, row: dict[str, Any]) -> bool:
        """Store one delivery (the arguments of `insert_delivery`); return whether it was new.

        Returns once the transaction holding the row has committed; raises what the insert raised.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.append((row, future))
        if self._flush_task is None:
            self._flush_task = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        batch: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._write(batch)
                batch = []
        except BaseException as exc:
            # Cancelled at shutdown, or a bug: no request may wait for ever.
            failure = exc if isinstance(exc, Exception) else RuntimeError("the delivery writer was stopped")
            for _, future in batch + self._queue:
                if not future.done():
                    future.set_exception(failure)
            self._queue.clear()
            raise
        finally:
            self._flush_task = None

    async def _write(self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]) -> None:
        loop = asyncio.get_running_loop()
        rows = [row for row, _ in batch]
        results: list[bool] | list[bool | Exception]
        try:
            results = await loop.run_in_executor(self._executor, store_rows, self.engine, rows)
        except Exception as exc:  # noqa: BLE001 - retried row by row to find the failing rows
            if len(rows) == 1:
                results = [exc]
            else:
                logger.warning(
                    "batch insert of %d deliveries failed, retrying one by one: %s", len(rows), exc
                )
                results = await loop.run_in_executor(
                    self._executor, store_rows_one_by_one, self.engine, rows
                )
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
