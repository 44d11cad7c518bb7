"""Retention: deletes raw webhook deliveries and job steps once they are past their keep period.

Raw deliveries are only kept for replay and debugging; the facts and metric points made from
them stay, so statistics do not change when deliveries are pruned. Only finished deliveries
(done, ignored, invalid) are deleted: pending ones still wait for the worker, and failed ones
wait for a replay. Steps are the largest fact table; a step goes with its job's age, while the
job, its run and the metric points stay.

Deletes run in chunks, each in its own short transaction, so a large backlog never holds the
SQLite write lock for long or builds one huge PostgreSQL transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, tuple_

from storage.db import session_scope
from storage.models import Delivery, DeliveryStatus, Job, Step

logger = logging.getLogger(__name__)

PRUNABLE_DELIVERY_STATUSES = (
    DeliveryStatus.DONE.value,
    DeliveryStatus.IGNORED.value,
    DeliveryStatus.INVALID.value,
)
CHUNK_SIZE = 2000


@dataclass(frozen=True)
class PruneResult:
    """How many rows one retention run deleted."""

    deliveries: int
    steps: int


def prune_deliveries(engine: Engine, *, now: datetime, keep: timedelta) -> int:
    """Delete finished deliveries received before `now - keep`; return how many."""
    cutoff = now - keep
    deleted = 0
    while True:
        with session_scope(engine) as session:
            ids = list(
                session.scalars(
                    select(Delivery.id)
                    .where(
                        Delivery.status.in_(PRUNABLE_DELIVERY_STATUSES),  # type: ignore[attr-defined]
                        Delivery.received_at < cutoff,
                    )
                    .order_by(Delivery.id)
                    .limit(CHUNK_SIZE)
                )
            )
            if not ids:
                return deleted
            session.execute(delete(Delivery).where(Delivery.id.in_(ids)))  # type: ignore[union-attr]
        deleted += len(ids)


def prune_steps(engine: Engine, *, now: datetime, keep: timedelta) -> int:
    """Delete the steps of jobs completed before `now - keep`; return how many."""
    cutoff = now - keep
    deleted = 0
    while True:
        with session_scope(engine) as session:
            keys = session.execute(
                select(Step.job_id, Step.number)
                .join(Job, Job.id == Step.job_id)
                .where(Job.completed_at < cutoff)  # type: ignore[operator]
                .order_by(Step.job_id, Step.number)
                .limit(CHUNK_SIZE)
            ).all()
            if not keys:
                return deleted
            session.execute(
                delete(Step).where(tuple_(Step.job_id, Step.number).in_([tuple(key) for key in keys]))
            )
        deleted += len(keys)


def prune(engine: Engine, *, now: datetime, deliveries_keep: timedelta, steps_keep: timedelta) -> PruneResult:
    """Apply both retention rules as of `now`."""
    result = PruneResult(
        deliveries=prune_deliveries(engine, now=now, keep=deliveries_keep),
        steps=prune_steps(engine, now=now, keep=steps_keep),
    )
    logger.info("retention pruned old rows", extra={"deliveries": result.deliveries, "steps": result.steps})
    return result
