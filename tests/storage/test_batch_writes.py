"""Writes that a worker batch delays to its end (metric points, jobs, steps) and the queries that read them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from bot.config import Settings
from bot.worker import BatchResult, process_batch
from handlers import slack as slack_handlers
from storage import deliveries, jobs, metrics, outbox, prefetch
from storage.db import create_db_engine, session_scope
from storage.models import Delivery, DeliveryStatus, Job, Metric, Step
from storage.models_release import MetricRollup, MetricRollupBucket

DAY = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


def job_delivery(delivery_id: str, job_id: int, status: str, **job: Any) -> dict[str, Any]:
    """Return the arguments of `insert_delivery` for a workflow_job delivery of run 900."""
    payload = {
        "action": status,
        "repository": {"id": 55, "full_name": "Octo/Widget"},
        "installation": {"id": 7},
        "workflow_job": {
            "id": job_id,
            "run_id": 900,
            "run_attempt": 1,
            "name": f"test {job_id}",
            "workflow_name": "CI",
            "head_branch": "main",
            "status": status,
            "created_at": "2026-03-02T12:00:00Z",
            "started_at": "2026-03-02T12:00:10Z",
            **job,
        },
    }
    return {
        "delivery_id": delivery_id,
        "event": "workflow_job",
        "action": status,
        "installation_id": 7,
        "repository": "octo/widget",
        "headers": {"x-github-event": "workflow_job"},
        "body": json.dumps(payload).encode(),
        "status": DeliveryStatus.PENDING,
        "error": None,
    }


def completed(delivery_id: str, job_id: int, completed_at: str, **job: Any) -> dict[str, Any]:
    steps = [
        {"number": 1, "name": "checkout", "status": "completed", "conclusion": "success",
         "started_at": "2026-03-02T12:00:10Z", "completed_at": "2026-03-02T12:00:12Z"},
        {"number": 2, "name": "pytest", "status": "completed", "conclusion": "success",
         "started_at": "2026-03-02T12:00:12Z", "completed_at": completed_at},
    ]
    return job_delivery(
        delivery_id, job_id, "completed", conclusion="success", runner_id=3, runner_name="r1",
        completed_at=completed_at, steps=steps, **job,
    )


def process_all(engine: Engine, settings: Settings) -> BatchResult:
    """Run batches until none is pending; a slow machine can end a batch at its time bound."""
    total = BatchResult()
    while (result := process_batch(engine, settings, limit=10)).total:
        total.done += result.done
        total.invalid += result.invalid
    return total


def store(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with session_scope(engine) as session:
        deliveries.insert_deliveries(session=session, rows=rows)


def test_one_batch_writes_jobs_steps_and_metrics(engine: Engine, settings: Settings) -> None:
    store(engine, [
        job_delivery("d-1", 1, "queued"),
        job_delivery("d-2", 1, "in_progress", steps=[{"number": 1, "name": "checkout", "status": "in_progress"}]),
        completed("d-3", 1, "2026-03-02T12:01:10Z"),
        completed("d-4", 2, "2026-03-02T12:00:40Z"),
    ])

    result = process_all(engine, settings)

    assert result.done == 4
    with Session(engine) as session:
        job = session.get_one(Job, 1)
        assert (job.status, job.conclusion, job.queue_s, job.duration_s) == ("completed", "success", 10.0, 60.0)
        steps = session.scalars(select(Step).where(Step.job_id == 1).order_by(Step.number)).all()
        assert [(step.number, step.conclusion, step.duration_s) for step in steps] == [
            (1, "success", 2.0), (2, "success", 58.0)
        ]
        points = session.scalars(select(Metric).order_by(Metric.source_key)).all()
        assert [(point.source_key, point.value) for point in points] == [
            ("queue_time:job:1", 10.0), ("queue_time:job:2", 10.0),
            ("test_duration:job:1", 60.0), ("test_duration:job:2", 30.0),
        ]
        rollups = {
            row.metric_type: (row.count, row.total, row.min_value, row.max_value)
            for row in session.scalars(select(MetricRollup))
        }
        assert rollups == {"queue_time": (2, 20.0, 10.0, 10.0), "test_duration": (2, 90.0, 30.0, 60.0)}
        bucket_counts = sorted(row.count for row in session.scalars(select(MetricRollupBucket)))
        assert bucket_counts == [1, 1, 2]


def test_resent_fact_counts_once(engine: Engine, settings: Settings) -> None:
    # The same completed job under two delivery ids, the second with a corrected time.
    store(engine, [completed("d-1", 1, "2026-03-02T12:01:10Z"), completed("d-2", 1, "2026-03-02T12:00:50Z")])

    process_all(engine, settings)

    with Session(engine) as session:
        values = session.scalars(select(Metric.value).where(Metric.source_key == "test_duration:job:1")).all()
        assert values == [40.0]
        rollup = session.scalars(select(MetricRollup).where(MetricRollup.metric_type == "test_duration")).one()
        assert (rollup.count, rollup.total, rollup.min_value, rollup.max_value) == (1, 40.0, 40.0, 40.0)


def test_updated_point_leaves_old_rollup(engine: Engine, settings: Settings) -> None:
    store(engine, [completed("d-1", 1, "2026-03-02T12:01:10Z")])
    process_all(engine, settings)
    store(engine, [completed("d-2", 1, "2026-03-02T12:00:30Z")])

    process_all(engine, settings)

    with Session(engine) as session:
        rollup = session.scalars(select(MetricRollup).where(MetricRollup.metric_type == "test_duration")).one()
        assert (rollup.count, rollup.total, rollup.min_value, rollup.max_value) == (1, 20.0, 20.0, 20.0)


def test_query_in_the_batch_sees_held_job_rows(engine: Engine, settings: Settings) -> None:
    store(engine, [job_delivery("d-1", 1, "queued")])
    with Session(engine) as session, session.begin():
        claimed = deliveries.claim_pending(session=session, limit=10)
        prefetch.prefetch_facts(session=session, claimed=claimed)
        facts = jobs.JobFacts(id=1, run_id=900, run_attempt=1, repo="octo/widget", name="lint", status="in_progress")
        jobs.upsert_job(session=session, facts=facts)
        assert prefetch.batch_facts(session).pending_rows  # type: ignore[union-attr]

        # An ORM query writes the held rows first, so it reads the new status.
        loaded = session.scalars(select(Job).where(Job.id == 1)).one()

        assert (loaded.name, loaded.status) == ("lint", "in_progress")


def test_invalid_delivery_in_a_batch_fails_alone(engine: Engine, settings: Settings) -> None:
    bad = job_delivery("d-2", 2, "completed")
    bad["body"] = json.dumps({"action": "completed", "workflow_job": {"id": "two", "run_id": 900}}).encode()
    store(engine, [completed("d-1", 1, "2026-03-02T12:01:10Z"), bad, completed("d-3", 3, "2026-03-02T12:00:40Z")])

    result = process_all(engine, settings)

    assert (result.done, result.invalid) == (2, 1)
    with Session(engine) as session:
        statuses = dict(session.execute(select(Delivery.delivery_id, Delivery.status)).all())
        assert statuses == {"d-1": "done", "d-2": "invalid", "d-3": "done"}
        assert session.scalars(select(Job.id).order_by(Job.id)).all() == [1, 3]
        sources = session.scalars(select(Metric.source_key).order_by(Metric.source_key)).all()
        assert sources == ["queue_time:job:1", "queue_time:job:3", "test_duration:job:1", "test_duration:job:3"]


def test_record_metric_outside_a_batch_writes_at_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        metrics.record_metric(
            session=session, name="build_time", metric_type="build_time", value=12.5,
            timestamp=DAY, tags={"repo": "Octo/Widget"}, source_key="build_time:run:1:1",
        )
        stored = session.scalars(select(Metric)).one()
        assert (stored.repo, stored.value) == ("octo/widget", 12.5)


def test_batch_reports_queued_messages(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker wakes the outbox sender only after a batch that queued a message.
    store(engine, [job_delivery("d-1", 1, "queued")])
    assert process_batch(engine, settings, limit=10).queued_messages is False

    def queue_a_message(ctx: Any, payload: dict[str, Any]) -> None:
        outbox.enqueue(session=ctx.session, kind="console", target="test", payload={"text": "hello"})

    reaction = slack_handlers.Reaction(queue_a_message, lambda ctx: ctx.event == "workflow_job")
    monkeypatch.setattr(slack_handlers, "REACTIONS", (reaction,))
    store(engine, [job_delivery("d-2", 2, "queued")])

    assert process_batch(engine, settings, limit=10).queued_messages is True
