"""JSON shapes of runs, attempts, jobs and steps, shared by the JSON API and the CLI."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlmodel import Session

from storage import queries
from storage.models import Job, RunAttempt, Step, WorkflowRun


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def step_view(step: Step) -> dict[str, Any]:
    return {
        "number": step.number,
        "name": step.name,
        "status": step.status,
        "conclusion": step.conclusion,
        "started_at": iso(step.started_at),
        "completed_at": iso(step.completed_at),
        "duration_s": step.duration_s,
    }


def job_view(job: Job, steps: list[Step]) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "name": job.name,
        "stage": job.stage,
        "status": job.status,
        "conclusion": job.conclusion,
        "labels": job.labels,
        "runner_name": job.runner_name,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "queue_s": job.queue_s,
        "duration_s": job.duration_s,
        "html_url": job.html_url,
        "steps": [step_view(step) for step in steps],
    }


def attempt_view(attempt: RunAttempt, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "status": attempt.status,
        "conclusion": attempt.conclusion,
        "triggering_actor": attempt.triggering_actor,
        "started_at": iso(attempt.run_started_at),
        "completed_at": iso(attempt.completed_at),
        "duration_s": attempt.duration_s,
        "jobs": jobs,
    }


def run_views(session: Session, runs: list[WorkflowRun], *, with_steps: bool = True) -> list[dict[str, Any]]:
    """Return runs with their attempts, each attempt with its jobs and their steps."""
    run_ids = [run.id for run in runs]
    attempts_by_run: dict[int, list[RunAttempt]] = defaultdict(list)
    for attempt in queries.list_attempts(session=session, run_ids=run_ids):
        attempts_by_run[attempt.run_id].append(attempt)
    jobs = queries.list_jobs(session=session, run_ids=run_ids)
    steps_by_job: dict[int, list[Step]] = defaultdict(list)
    if with_steps:
        for step in queries.list_steps(session=session, job_ids=[job.id for job in jobs]):
            steps_by_job[step.job_id].append(step)
    jobs_by_attempt: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        jobs_by_attempt[(job.run_id, job.run_attempt)].append(job_view(job, steps_by_job[job.id]))

    views = []
    for run in runs:
        attempts = attempts_by_run[run.id]
        known = {attempt.attempt for attempt in attempts}
        # Jobs can arrive before their run's own event; show them under a placeholder attempt.
        for run_id, number in sorted(jobs_by_attempt):
            if run_id == run.id and number not in known:
                attempts.append(RunAttempt(run_id=run.id, attempt=number, status="unknown"))
        attempts.sort(key=lambda attempt: attempt.attempt)
        latest = attempts[-1] if attempts else None
        views.append(
            {
                "run_id": run.id,
                "repo": run.repo,
                "workflow": run.workflow_name,
                "workflow_path": run.workflow_path,
                "run_number": run.run_number,
                "event": run.event,
                "branch": run.head_branch,
                "head_sha": run.head_sha,
                "head_repository": run.head_repository,
                "title": run.display_title,
                "actor": run.actor,
                "html_url": run.html_url,
                "created_at": iso(run.created_at),
                "pull_requests": run.pull_request_numbers,
                "status": latest.status if latest else None,
                "conclusion": latest.conclusion if latest else None,
                "duration_s": latest.duration_s if latest else None,
                "attempts": [
                    attempt_view(attempt, jobs_by_attempt[(run.id, attempt.attempt)])
                    for attempt in attempts
                ],
            }
        )
    return views
