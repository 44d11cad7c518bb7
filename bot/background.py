"""The background threads of a bot process: the delivery worker and the outbox sender.

`release-bot serve` runs them beside the HTTP server. `release-bot worker` runs them in a
process of their own, for deployments where the server runs with WORKER_ENABLED=false.
"""

from __future__ import annotations

from sqlalchemy import Engine

from bot.alert_slack import register_alert_senders
from bot.config import Settings
from bot.digest import register_digest_sender
from bot.outbox import OutboxWorker
from bot.pr_comment import register_github_senders
from bot.worker import Worker


def build_background(engine: Engine, settings: Settings) -> tuple[Worker, OutboxWorker]:
    """Register the outbox senders, and return the delivery worker and the outbox sender."""
    outbox_worker = OutboxWorker(engine, poll_seconds=settings.worker_poll_seconds)
    register_github_senders(engine, settings)
    register_alert_senders(engine, settings)
    register_digest_sender(engine, settings)
    worker = Worker(engine, settings, after_batch=outbox_worker.notify)
    return worker, outbox_worker
