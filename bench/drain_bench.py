"""Benchmark the delivery worker alone: pre-load N pending `workflow_job` deliveries, time drain().

Run by hand from the repository root, for example:
`.venv/bin/python -m bench.drain_bench --deliveries 6000 --repeat 3`.
With `--profile FILE` the last repetition runs under cProfile and writes its stats to FILE.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.ingest_bench import DEFAULT_POSTGRES_URL, SECRET, reset_postgres
from bench.payloads import generate_deliveries
from bot.config import load_settings
from bot.worker import Worker
from storage import deliveries as inbox
from storage.db import create_db_engine, session_scope, upgrade_database


def preload(engine: Any, count: int, seed: int) -> None:
    """Store `count` pending deliveries as the webhook endpoint would."""
    generated = generate_deliveries(count, secret=SECRET, seed=seed)
    for start in range(0, len(generated), 500):
        with session_scope(engine) as session:
            for delivery in generated[start : start + 500]:
                payload = json.loads(delivery.body)
                inbox.insert_delivery(
                    session=session,
                    delivery_id=delivery.delivery_id,
                    event="workflow_job",
                    action=payload["action"],
                    installation_id=payload["installation"]["id"],
                    repository=payload["repository"]["full_name"],
                    headers={name.lower(): value for name, value in delivery.headers.items()
                             if name.lower() != "x-hub-signature-256"},
                    body=delivery.body,
                )


def run_once(
    database_url: str, count: int, seed: int, profile: Path | None, batch_size: int = 50
) -> dict[str, Any]:
    """Pre-load, drain, and return the rate and outcome counts."""
    upgrade_database(database_url)
    settings = load_settings(
        _env_file=None, database_url=database_url, github_webhook_secret=SECRET, worker_batch_size=batch_size
    )
    engine = create_db_engine(database_url)
    try:
        preload(engine, count, seed)
        worker = Worker(engine, settings)
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        cpu_started = time.process_time()
        if profiler:
            profiler.enable()
        processed = worker.drain()
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        with session_scope(engine) as session:
            counts = inbox.count_by_status(session=session)
    finally:
        engine.dispose()
    return {
        "processed": processed,
        "seconds": elapsed,
        "per_s": processed / elapsed,
        "cpu_seconds": cpu,
        "per_cpu_s": processed / cpu,
        "statuses": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql", help="Comma-separated: sqlite, postgresql.")
    parser.add_argument("--deliveries", type=int, default=6000, help="Pending deliveries per run.")
    parser.add_argument("--repeat", type=int, default=3, help="Repetitions per backend.")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="Server for the PostgreSQL runs.")
    parser.add_argument("--profile", type=Path, help="Write cProfile stats of the last run to this file.")
    parser.add_argument("--batch-size", type=int, default=50,
                        help="Most deliveries one batch claims (WORKER_BATCH_SIZE).")
    args = parser.parse_args()

    for backend in args.backends.split(","):
        rates = []
        cpu_rates = []
        for repetition in range(args.repeat):
            profile = args.profile if repetition == args.repeat - 1 else None
            with tempfile.TemporaryDirectory(prefix="drain-bench-") as workdir:
                if backend == "sqlite":
                    url = f"sqlite:///{Path(workdir) / 'bot.db'}"
                else:
                    url = reset_postgres(args.postgres_url)
                result = run_once(url, args.deliveries, repetition, profile, args.batch_size)
            rates.append(result["per_s"])
            cpu_rates.append(result["per_cpu_s"])
            print(f"[{repetition + 1}/{args.repeat}] {backend}: {json.dumps(result)}", flush=True)
        print(
            f"{backend}: median {statistics.median(rates):.0f} deliveries/s "
            f"(min {min(rates):.0f}, max {max(rates):.0f}); per CPU second: median "
            f"{statistics.median(cpu_rates):.0f} (min {min(cpu_rates):.0f}, max {max(cpu_rates):.0f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
