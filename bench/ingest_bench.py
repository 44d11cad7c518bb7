"""Benchmark webhook ingestion: the bot on SQLite and PostgreSQL next to a bare ASGI baseline.

For each target and repetition it starts a fresh server (uvicorn, same options for all) on a
fresh database, then measures from this second process over 127.0.0.1:

- max throughput: a fixed list of signed `workflow_job` deliveries over N keep-alive connections;
- latency at a fixed offered rate (500 deliveries/s by default), counted from each request's
  scheduled send time;
- for the bot, the processing lag: a poller process reads the `delivery` table every 20 ms and
  notes when each delivery leaves the pending state, minus the time its 202 arrived;
- the server's peak RSS (VmHWM) and CPU time from /proc.

Run by hand from the repository root, for example:
`.venv/bin/python -m bench.ingest_bench --repeat 3 --json-out /tmp/ingest.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import LoadResult, closed_loop, open_loop
from bench.payloads import generate_deliveries

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-webhook-secret-0123456789"
HOST = "127.0.0.1"
POLL_SECONDS = 0.02
# These use the (status, id) index, so a poll reads only rows processed since the last one.
PROCESSED_QUERY = (
    "SELECT id, delivery_id FROM delivery "
    "WHERE status IN ('done', 'invalid', 'failed', 'ignored') AND id > %s"
)
BOUNDS_QUERY = (
    "SELECT (SELECT min(id) FROM delivery WHERE status = 'pending'), (SELECT max(id) FROM delivery)"
)
DEFAULT_POSTGRES_URL = "postgresql+psycopg://releasebot:releasebot@127.0.0.1:5432/postgres"
BENCH_DATABASE = "release_bot_bench"


@dataclass
class Target:
    """A server to measure: the baseline app, or the bot on one database backend."""

    name: str
    backend: str  # "baseline", "sqlite" or "postgresql"
    worker: bool = True
    # The delivery worker in its own process (`release-bot worker`), the server without one.
    split: bool = False
    # The baseline's SQLite `synchronous` setting: FULL syncs each commit to disk, as the bot
    # does for its deliveries; NORMAL syncs only at checkpoints.
    synchronous: str = "FULL"
    # The baseline's journal: WAL, or DELETE (SQLite's default rollback journal).
    journal: str = "WAL"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """Return VmHWM and VmRSS in KiB, and utime+stime in clock ticks, of a process."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    values["cpu_ticks"] = int(fields[11]) + int(fields[12])
    return values


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def reset_postgres(admin_url: str) -> str:
    """Drop and create the benchmark database; return its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    with psycopg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        dbname=url.database or "postgres", autocommit=True,
    ) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    return url.set(database=BENCH_DATABASE).render_as_string(hide_password=False)


class Server:
    """A uvicorn process started by this benchmark, stopped by its pid."""

    def __init__(self, target: Target, workdir: Path, postgres_url: str) -> None:
        self.port = free_port()
        self.database_url = ""
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        if target.backend == "baseline":
            env.update(
                BENCH_SECRET=SECRET,
                BENCH_SQLITE_PATH=str(workdir / "baseline.db"),
                BENCH_SQLITE_SYNCHRONOUS=target.synchronous,
                BENCH_SQLITE_JOURNAL=target.journal,
            )
            app_args = ["bench.baseline_app:app"]
        else:
            if target.backend == "sqlite":
                self.database_url = f"sqlite:///{workdir / 'bot.db'}"
            else:
                self.database_url = reset_postgres(postgres_url)
            env.update(DATABASE_URL=self.database_url, GITHUB_WEBHOOK_SECRET=SECRET)
            if target.split:
                env.update(WORKER_ENABLED="false")
            factory = "bot.app:create_app" if target.worker else "bench.bot_factory:create_ingest_only_app"
            app_args = ["--factory", factory]
        command = [
            sys.executable, "-m", "uvicorn", "--host", HOST, "--port", str(self.port),
            "--no-access-log", "--log-level", "warning", *app_args,
        ]
        self.log_path = workdir / f"{target.name}-{self.port}.log"
        self.log = self.log_path.open("wb")
        # The server runs from its own directory so that no `.env` file is read.
        self.process = subprocess.Popen(command, cwd=workdir, env=env, stdout=self.log, stderr=self.log)
        self.wait_ready()
        self.worker_process: subprocess.Popen[bytes] | None = None
        if target.split:
            worker_env = {**env, "WORKER_ENABLED": "true", "WORKER_POLL_SECONDS": "0.05", "LOG_LEVEL": "WARNING"}
            self.worker_process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "worker"], cwd=workdir, env=worker_env,
                stdout=self.log, stderr=self.log,
            )

    @property
    def pids(self) -> list[int]:
        """Return the pids of the bot's processes: the server, and the worker when split."""
        return [self.process.pid] + ([self.worker_process.pid] if self.worker_process else [])

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not respond to /healthz in {timeout_s} s; see {self.log_path}")

    def stop(self) -> None:
        for process in (self.worker_process, self.process):
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()


def poll_processed(database_url: str, expected: Any, stop: Any, results: Any, deadline_s: float) -> None:
    """Note when each delivery leaves `pending`; runs in its own process to spare the client's GIL."""
    if database_url.startswith("sqlite"):
        import sqlite3

        path = database_url.removeprefix("sqlite:///")
        connection: Any = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        query = PROCESSED_QUERY.replace("%s", "?")
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(database_url)
        connection = psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username, password=url.password,
            dbname=url.database, autocommit=True,
        )
        query = PROCESSED_QUERY

    seen: dict[str, float] = {}
    floor = 0
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        # Every row below the lowest pending id, read first, is processed by the time the
        # second query runs, so the next poll can start above it. The worker claims in id
        # order, so few processed rows lie above it to be read again.
        lowest_pending, highest = connection.execute(BOUNDS_QUERY).fetchone()
        rows = connection.execute(query, (floor,)).fetchall()
        now = time.time()
        for _row_id, delivery_id in rows:
            seen.setdefault(delivery_id, now)
        if lowest_pending is not None:
            floor = max(floor, lowest_pending - 1)
        elif highest is not None:
            floor = max(floor, highest)
        if stop.is_set() and expected.value and len(seen) >= expected.value:
            break
        time.sleep(POLL_SECONDS)
    connection.close()
    results.put(seen)


def percentile(values: list[float], fraction: float) -> float:
    """Return a percentile with linear interpolation between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def measure(
    target: Target, mode: str, args: argparse.Namespace, workdir: Path, deliveries: list[Any]
) -> dict[str, Any]:
    """Start a server, run one load phase against it, and return the figures."""
    server = Server(target, workdir, args.postgres_url)
    try:
        poller = None
        if target.backend != "baseline" and target.worker:
            context = multiprocessing.get_context("spawn")
            expected = context.Value("i", 0)
            stop = context.Event()
            results = context.Queue()
            poller = context.Process(
                target=poll_processed,
                args=(server.database_url, expected, stop, results, args.timeout * 4),
            )
            poller.start()
        before = [proc_status(pid) for pid in server.pids]
        load_before = loadavg()
        if mode == "throughput":
            load = asyncio.run(
                closed_loop(HOST, server.port, deliveries, concurrency=args.concurrency, timeout_s=args.timeout)
            )
        else:
            load = asyncio.run(
                open_loop(
                    HOST, server.port, deliveries, rate=args.rate, connections=args.connections,
                    timeout_s=args.timeout,
                )
            )
        last_answer = max((outcome.answered_at for outcome in load.outcomes), default=time.time())
        figures = summarize_load(load)
        if poller is not None:
            accepted = [outcome for outcome in load.outcomes if outcome.status == 202]
            expected.value = len(accepted)
            stop.set()
            seen = results.get(timeout=args.timeout * 4 + 30)
            poller.join(10)
            lags = [seen[o.delivery_id] - o.answered_at for o in accepted if o.delivery_id in seen]
            figures.update(
                processed=len(lags),
                lag_p50_ms=percentile(lags, 0.5) * 1000,
                lag_p99_ms=percentile(lags, 0.99) * 1000,
                lag_max_ms=max(lags, default=float("nan")) * 1000,
                drain_after_load_s=max(seen.values(), default=last_answer) - last_answer,
            )
        # With the worker in its own process, memory and CPU are the sums over both processes.
        after = [proc_status(pid) for pid in server.pids]
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_s = sum(end["cpu_ticks"] - start["cpu_ticks"] for start, end in zip(before, after, strict=True)) / ticks
        figures.update(
            peak_rss_mb=sum(end["VmHWM"] for end in after) / 1024,
            rss_end_mb=sum(end["VmRSS"] for end in after) / 1024,
            server_cpu_s=cpu_s,
            server_cpu_ms_per_delivery=cpu_s * 1000 / max(1, figures["requests"]),
            loadavg_before=load_before,
            loadavg_after=loadavg(),
        )
        return figures
    finally:
        server.stop()


def summarize_load(load: LoadResult) -> dict[str, Any]:
    latencies = [outcome.latency_s for outcome in load.outcomes]
    statuses: dict[str, int] = {}
    for outcome in load.outcomes:
        statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1
    return {
        "requests": len(load.outcomes),
        "errors": load.errors,
        "statuses": statuses,
        "wall_s": load.wall_s,
        "deliveries_per_s": len(load.outcomes) / load.wall_s if load.wall_s else 0.0,
        "ack_p50_ms": percentile(latencies, 0.5) * 1000,
        "ack_p99_ms": percentile(latencies, 0.99) * 1000,
        "ack_max_ms": max(latencies, default=float("nan")) * 1000,
    }


SUMMARY_KEYS = {
    "throughput": ("deliveries_per_s", "ack_p50_ms", "ack_p99_ms", "lag_p50_ms", "lag_p99_ms",
                   "drain_after_load_s", "peak_rss_mb", "server_cpu_ms_per_delivery"),
    "rate": ("deliveries_per_s", "ack_p50_ms", "ack_p99_ms", "lag_p50_ms", "lag_p99_ms",
             "drain_after_load_s", "peak_rss_mb", "server_cpu_ms_per_delivery"),
}


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """Return a Markdown table: median (min-max) per figure, and the ratio to the baseline."""
    lines = []
    for mode, keys in SUMMARY_KEYS.items():
        lines.append(f"\n### {mode}\n")
        lines.append("| target | " + " | ".join(keys) + " |")
        lines.append("|---" * (len(keys) + 1) + "|")
        baseline = runs.get("baseline", {}).get(mode)
        for name, modes in runs.items():
            cells = []
            for key in keys:
                values = [run[key] for run in modes.get(mode, []) if key in run]
                if not values:
                    cells.append("-")
                    continue
                median = statistics.median(values)
                cell = f"{median:.1f} ({min(values):.1f}-{max(values):.1f})"
                if baseline and name != "baseline" and key in ("deliveries_per_s", "ack_p99_ms"):
                    base = statistics.median(run[key] for run in baseline)
                    cell += f" x{median / base:.2f}"
                cells.append(cell)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_target(name: str) -> Target:
    """Read a target name: baseline[-normal|-default], or sqlite/postgresql with "-ingest" or "-split"."""
    backend, _, suffix = name.partition("-")
    known = ("", "normal", "default") if backend == "baseline" else ("", "ingest", "split")
    if backend not in ("baseline", "sqlite", "postgresql") or suffix not in known:
        raise SystemExit(
            f"unknown target {name!r}: use baseline, baseline-normal (commits synced only at "
            "checkpoints), baseline-default (SQLite's default rollback journal), sqlite, "
            "postgresql, or one of the last two with -ingest (workers off) or -split (the "
            "worker in its own process)"
        )
    return Target(
        name,
        backend,
        worker=suffix != "ingest",
        split=suffix == "split",
        synchronous="NORMAL" if suffix == "normal" else "FULL",
        journal="DELETE" if suffix == "default" else "WAL",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="baseline,sqlite,postgresql",
                        help="Comma-separated targets: baseline, baseline-normal, baseline-default, "
                        "sqlite, postgresql; a -ingest suffix (sqlite-ingest) runs the bot with its "
                        "workers off, a -split suffix runs the delivery worker as `release-bot worker` "
                        "in a second process.")
    parser.add_argument("--modes", default="throughput,rate", help="Phases to run: throughput, rate.")
    parser.add_argument("--repeat", type=int, default=3, help="Repetitions of each measurement.")
    parser.add_argument("--requests", type=int, default=9000, help="Deliveries sent in the throughput phase.")
    parser.add_argument("--concurrency", type=int, default=32, help="Connections in the throughput phase.")
    parser.add_argument("--rate", type=float, default=500.0, help="Offered deliveries per second in the rate phase.")
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="Length of the rate phase in seconds.")
    parser.add_argument("--connections", type=int, default=64, help="Connections available to the rate phase.")
    parser.add_argument("--timeout", type=float, default=60.0, help="Deadline of one load phase in seconds.")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help=f"Server whose database {BENCH_DATABASE!r} is dropped and recreated per run.")
    parser.add_argument("--json-out", type=Path, help="Write every run's figures to this JSON file.")
    args = parser.parse_args()

    targets = [parse_target(name) for name in args.targets.split(",")]
    modes = args.modes.split(",")
    rate_count = int(args.rate * args.rate_seconds)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {target.name: {} for target in targets}
    print(f"nproc={os.cpu_count()} loadavg={loadavg():.2f}", flush=True)
    for repetition in range(args.repeat):
        # The targets take turns within each repetition, so a burst of load from other
        # processes on the machine falls on all of them alike.
        for mode in modes:
            count = args.requests if mode == "throughput" else rate_count
            for target in targets:
                deliveries = generate_deliveries(count, secret=SECRET, seed=repetition)
                with tempfile.TemporaryDirectory(prefix="ingest-bench-") as workdir:
                    figures = measure(target, mode, args, Path(workdir), deliveries)
                runs[target.name].setdefault(mode, []).append(figures)
                print(f"[{repetition + 1}/{args.repeat}] {target.name} {mode}: {json.dumps(figures)}", flush=True)
    print(summarize(runs))
    if args.json_out:
        args.json_out.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
