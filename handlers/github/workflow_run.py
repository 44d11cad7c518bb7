"""`workflow_run`: a run attempt's status, times and duration, and its build-time metrics."""

from __future__ import annotations

import logging
from typing import Any

from bot.observability import observe_build_duration
from handlers.github.context import HandlerContext, classify_stage, record_repository
from handlers.github.payload import (
    MAX_COUNTER,
    login_of,
    optional_int,
    optional_list,
    optional_object,
    optional_str,
    parse_time,
    require_int,
    require_object,
)
from handlers.github.reactions import pr_comment
from storage import jobs, metrics, runs
from storage.models import MetricType, RunAttempt, WorkflowRun

logger = logging.getLogger(__name__)

EVENTS = ("workflow_run",)


def handle(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Record the run and the attempt this event describes."""
    run_payload = require_object(payload, "workflow_run")
    run_id = require_int(run_payload, "id", where="workflow_run")
    repo = record_repository(ctx, payload)
    if repo is None:
        repo = (optional_str(optional_object(run_payload, "repository"), "full_name") or "").lower()
    workflow = optional_object(payload, "workflow")
    head_repository = optional_str(optional_object(run_payload, "head_repository"), "full_name")
    pull_numbers = [
        number
        for entry in optional_list(run_payload, "pull_requests")
        if isinstance(entry, dict) and (number := optional_int(entry, "number", maximum=MAX_COUNTER)) is not None
    ]

    run = runs.upsert_run(
        session=ctx.session,
        facts=runs.RunFacts(
            id=run_id,
            repo=repo,
            repository_id=optional_int(optional_object(payload, "repository"), "id"),
            installation_id=optional_int(optional_object(payload, "installation"), "id"),
            workflow_id=optional_int(run_payload, "workflow_id"),
            workflow_name=optional_str(run_payload, "name") or optional_str(workflow, "name"),
            workflow_path=optional_str(run_payload, "path") or optional_str(workflow, "path"),
            run_number=optional_int(run_payload, "run_number", maximum=MAX_COUNTER),
            event=optional_str(run_payload, "event"),
            head_branch=optional_str(run_payload, "head_branch"),
            head_sha=optional_str(run_payload, "head_sha"),
            head_repository=head_repository.lower() if head_repository else None,
            display_title=optional_str(run_payload, "display_title"),
            actor=login_of(run_payload, "actor") or login_of(payload, "sender"),
            html_url=optional_str(run_payload, "html_url"),
            created_at=parse_time(run_payload.get("created_at")),
            pull_request_numbers=pull_numbers,
        ),
    )

    attempt_number = optional_int(run_payload, "run_attempt", maximum=MAX_COUNTER) or 1
    status = optional_str(run_payload, "status") or "queued"
    if status not in runs.STATUS_RANK:
        logger.warning(
            "unknown workflow_run status",
            extra=ctx.log_extra(run_id=run_id, status=status),
        )
    conclusion = optional_str(run_payload, "conclusion")
    if conclusion not in runs.KNOWN_CONCLUSIONS:
        logger.warning(
            "unknown workflow_run conclusion",
            extra=ctx.log_extra(run_id=run_id, conclusion=conclusion),
        )
    attempt, completed_now = runs.upsert_attempt(
        session=ctx.session,
        facts=runs.AttemptFacts(
            run_id=run_id,
            attempt=attempt_number,
            status=status,
            conclusion=conclusion,
            triggering_actor=login_of(run_payload, "triggering_actor"),
            # Each attempt starts at its own run_started_at; created_at stays at the first attempt.
            run_started_at=parse_time(run_payload.get("run_started_at"))
            or parse_time(run_payload.get("created_at")),
            updated_at=parse_time(run_payload.get("updated_at")),
        ),
    )
    if attempt.status == "completed":
        closed = jobs.close_unstarted_jobs(
            session=ctx.session, run_id=run_id, attempt=attempt_number, conclusion=attempt.conclusion
        )
        if closed:
            logger.info("closed jobs that never started", extra=ctx.log_extra(run_id=run_id, jobs=closed))
        record_run_metrics(ctx, run, attempt)
        pr_comment.on_run_completed(ctx, run, attempt)


def record_run_metrics(ctx: HandlerContext, run: WorkflowRun, attempt: RunAttempt) -> None:
    """Record build time for a completed attempt, and test or publish time if the workflow is one."""
    if attempt.duration_s is None:
        return
    tags = {
        "repo": run.repo,
        "workflow": run.workflow_name or "",
        "branch": run.head_branch or "",
        "conclusion": attempt.conclusion or "",
        "event": run.event or "",
        "run_id": str(run.id),
        "attempt": str(attempt.attempt),
    }
    key = f"run:{run.id}:{attempt.attempt}"
    observe_build_duration(run.repo, run.workflow_name or "", attempt.duration_s)
    metrics.record_metric(
        session=ctx.session,
        name=MetricType.BUILD_TIME.value,
        metric_type=MetricType.BUILD_TIME.value,
        value=attempt.duration_s,
        timestamp=attempt.completed_at,
        tags=tags,
        source_key=f"build_time:{key}",
    )
    stage = classify_stage(ctx.settings, run.workflow_name)
    stage_metric = {"test": MetricType.TEST_DURATION, "publish": MetricType.PUBLISH_TIME}.get(stage or "")
    if stage_metric is not None:
        metrics.record_metric(
            session=ctx.session,
            name=stage_metric.value,
            metric_type=stage_metric.value,
            value=attempt.duration_s,
            timestamp=attempt.completed_at,
            tags=tags,
            source_key=f"{stage_metric.value}:{key}",
        )
