"""A small HTTP/1.1 load generator on asyncio streams, for the ingestion benchmark.

Requests are serialized before the clock starts, so the client spends a few tens of
microseconds per request (a write and a header parse) and leaves the second core to the
server. Both modes are bounded: a fixed request list, and a deadline after which unfinished
requests count as timed out.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench.payloads import Delivery


@dataclass
class Outcome:
    """Result of one request as the client saw it: status, latency in seconds, time of the response."""

    delivery_id: str
    status: int
    latency_s: float
    answered_at: float


@dataclass
class LoadResult:
    """All outcomes of one load phase and its wall-clock duration."""

    outcomes: list[Outcome] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0


def serialize(delivery: Delivery, host: str, port: int) -> bytes:
    """Return the full HTTP/1.1 request bytes of one delivery."""
    lines = ["POST /github/webhooks HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in delivery.headers.items()]
    lines.append(f"Content-Length: {len(delivery.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + delivery.body


class Connection:
    """One keep-alive connection that sends a request and reads its response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    async def request(self, data: bytes) -> int:
        """Send raw request bytes and return the response status; the body is read and dropped."""
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def closed_loop(
    host: str, port: int, deliveries: list[Delivery], *, concurrency: int, timeout_s: float
) -> LoadResult:
    """Send every delivery over `concurrency` connections, each waiting for its response."""
    requests = [(delivery.delivery_id, serialize(delivery, host, port)) for delivery in deliveries]
    connections = [await Connection.open(host, port) for _ in range(concurrency)]
    result = LoadResult()
    next_index = 0

    async def drive(connection: Connection) -> None:
        nonlocal next_index
        while next_index < len(requests):
            delivery_id, data = requests[next_index]
            next_index += 1
            sent = time.perf_counter()
            try:
                status = await connection.request(data)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                return
            answered = time.perf_counter()
            result.outcomes.append(Outcome(delivery_id, status, answered - sent, time.time()))

    started = time.perf_counter()
    tasks = [asyncio.ensure_future(drive(connection)) for connection in connections]
    done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    result.wall_s = time.perf_counter() - started
    for task in pending:
        task.cancel()
    result.errors += len(requests) - len(result.outcomes) - result.errors
    for connection in connections:
        connection.close()
    return result


async def open_loop(
    host: str, port: int, deliveries: list[Delivery], *, rate: float, connections: int, timeout_s: float
) -> LoadResult:
    """Send deliveries at a fixed rate; latency counts from each request's scheduled time.

    Counting from the schedule, not from the send, keeps a stalled server from hiding its
    queueing delay (coordinated omission).
    """
    requests = [(delivery.delivery_id, serialize(delivery, host, port)) for delivery in deliveries]
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = [await Connection.open(host, port) for _ in range(connections)]
    for connection in opened:
        idle.put_nowait(connection)
    result = LoadResult()

    async def one(delivery_id: str, data: bytes, scheduled: float) -> None:
        connection = await idle.get()
        try:
            status = await connection.request(data)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
            return
        answered = time.perf_counter()
        idle.put_nowait(connection)
        result.outcomes.append(Outcome(delivery_id, status, answered - scheduled, time.time()))

    started = time.perf_counter()
    tasks = []
    for index, (delivery_id, data) in enumerate(requests):
        scheduled = started + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(delivery_id, data, scheduled)))
    remaining = max(0.1, timeout_s - (time.perf_counter() - started))
    done, pending = await asyncio.wait(tasks, timeout=remaining)
    result.wall_s = time.perf_counter() - started
    for task in pending:
        task.cancel()
    result.errors += len(pending)
    for connection in opened:
        connection.close()
    return result
