"""`workflow_job`: a job's status, runner, queue time, duration and steps, and job metrics."""

from __future__ import annotations

import logging
from typing import Any

from handlers.github.context import HandlerContext, classify_stage, record_repository
from handlers.github.payload import (
    MAX_COUNTER,
    optional_int,
    optional_list,
    optional_str,
    parse_time,
    require_int,
    require_object,
)
from handlers.github.release_status import record_job_stage
from storage import jobs, metrics, runs
from storage.jobs import JobRecord
from storage.models import MetricType

logger = logging.getLogger(__name__)

EVENTS = ("workflow_job",)


def handle(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Record the job and its steps; close nothing and undo nothing on a late event."""
    job_payload = require_object(payload, "workflow_job")
    job_id = require_int(job_payload, "id", where="workflow_job")
    run_id = require_int(job_payload, "run_id", where="workflow_job")
    repo = record_repository(ctx, payload) or ""
    name = optional_str(job_payload, "name") or f"job {job_id}"
    workflow_name = optional_str(job_payload, "workflow_name")
    status = optional_str(job_payload, "status") or "queued"
    if status not in runs.STATUS_RANK:
        logger.warning("unknown workflow_job status", extra=ctx.log_extra(job_id=job_id, status=status))
    conclusion = optional_str(job_payload, "conclusion")
    if conclusion not in runs.KNOWN_CONCLUSIONS:
        logger.warning("unknown workflow_job conclusion", extra=ctx.log_extra(job_id=job_id, conclusion=conclusion))

    runs.ensure_run(
        session=ctx.session,
        run_id=run_id,
        repo=repo,
        workflow_name=workflow_name,
        head_branch=optional_str(job_payload, "head_branch"),
        head_sha=optional_str(job_payload, "head_sha"),
    )
    facts = jobs.JobFacts(
        id=job_id,
        run_id=run_id,
        run_attempt=optional_int(job_payload, "run_attempt", maximum=MAX_COUNTER) or 1,
        repo=repo,
        name=name,
        status=status,
        stage=classify_stage(ctx.settings, name) or classify_stage(ctx.settings, workflow_name) or "build",
        conclusion=conclusion,
        workflow_name=workflow_name,
        head_branch=optional_str(job_payload, "head_branch"),
        head_sha=optional_str(job_payload, "head_sha"),
        labels=[label for label in optional_list(job_payload, "labels") if isinstance(label, str)],
        runner_id=optional_int(job_payload, "runner_id"),
        runner_name=optional_str(job_payload, "runner_name"),
        runner_group_name=optional_str(job_payload, "runner_group_name"),
        created_at=parse_time(job_payload.get("created_at")),
        started_at=parse_time(job_payload.get("started_at")),
        completed_at=parse_time(job_payload.get("completed_at")),
        html_url=optional_str(job_payload, "html_url"),
        steps=read_steps(job_payload),
    )
    job, _ = jobs.upsert_job(session=ctx.session, facts=facts)
    attempt = runs.get_attempt(session=ctx.session, run_id=run_id, attempt=job.run_attempt)
    if job.status != "completed" and attempt is not None and attempt.status == "completed":
        # The queued event came after its run completed; the job can no longer start.
        jobs.close_unstarted_jobs(
            session=ctx.session, run_id=run_id, attempt=job.run_attempt, conclusion=attempt.conclusion
        )
    record_job_stage(ctx, job)
    if job.status == "completed":
        record_job_metrics(ctx, job)


def read_steps(job_payload: dict[str, Any]) -> list[jobs.StepFacts]:
    """Read the `steps` list, skipping entries without a number (skipped work may carry nulls)."""
    steps = []
    for entry in optional_list(job_payload, "steps"):
        if not isinstance(entry, dict):
            continue
        number = optional_int(entry, "number", maximum=MAX_COUNTER)
        if number is None:
            continue
        steps.append(
            jobs.StepFacts(
                number=number,
                name=optional_str(entry, "name") or f"step {number}",
                status=optional_str(entry, "status"),
                conclusion=optional_str(entry, "conclusion"),
                started_at=parse_time(entry.get("started_at")),
                completed_at=parse_time(entry.get("completed_at")),
            )
        )
    return steps


def record_job_metrics(ctx: HandlerContext, job: JobRecord) -> None:
    """Record queue time, and test or publish time for jobs of those stages."""
    tags = {
        "repo": job.repo,
        "workflow": job.workflow_name or "",
        "branch": job.head_branch or "",
        "conclusion": job.conclusion or "",
        "job": job.name,
        "run_id": str(job.run_id),
        "attempt": str(job.run_attempt),
    }
    if job.queue_s is not None:
        metrics.record_metric(
            session=ctx.session,
            name=MetricType.QUEUE_TIME.value,
            metric_type=MetricType.QUEUE_TIME.value,
            value=job.queue_s,
            timestamp=job.started_at or job.completed_at,
            tags=tags,
            source_key=f"queue_time:job:{job.id}",
        )
    # A job counts as test or publish work by its own name only; when the whole workflow is a
    # test or publish workflow, the run's duration is recorded instead (see workflow_run).
    stage = classify_stage(ctx.settings, job.name)
    stage_metric = {"test": MetricType.TEST_DURATION, "publish": MetricType.PUBLISH_TIME}.get(stage or "")
    workflow_stage = classify_stage(ctx.settings, job.workflow_name)
    if stage_metric is not None and job.duration_s is not None and workflow_stage != stage:
        metrics.record_metric(
            session=ctx.session,
            name=stage_metric.value,
            metric_type=stage_metric.value,
            value=job.duration_s,
            timestamp=job.completed_at,
            tags=tags,
            source_key=f"{stage_metric.value}:job:{job.id}",
        )
