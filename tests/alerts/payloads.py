"""Webhook payloads for the alert tests: octo-org/widget under installation 424242, with commit
authors, failed jobs and steps, and deployment statuses."""

from __future__ import annotations

from typing import Any

from tests.slack import payloads as slack_payloads
from tests.slack.payloads import (
    INSTALLATION_ID,
    installation_created,
    installation_deleted,
    repository,
)

__all__ = [
    "INSTALLATION_ID",
    "deployment_status",
    "installation_created",
    "installation_deleted",
    "job",
    "run",
]

AUTHOR_EMAIL = "dev@example.com"


def run(
    run_id: int,
    *,
    conclusion: str = "failure",
    name: str = "CI",
    branch: str = "main",
    sha: str = "1919191919191919191919191919191919191919",
    attempt: int = 1,
    started: str = "2024-06-03T10:00:00Z",
    updated: str = "2024-06-03T10:05:12Z",
    title: str = "Update parser",
    run_number: int | None = None,
    email: str = AUTHOR_EMAIL,
    event: str = "push",
    created: str | None = None,
) -> dict[str, Any]:
    """A completed workflow_run delivery."""
    payload = slack_payloads.workflow_run(
        run_id,
        name=name,
        conclusion=conclusion,
        branch=branch,
        title=title,
        attempt=attempt,
        run_number=run_number or run_id % 1000,
        started=started,
        updated=updated,
        event=event,
    )
    body = payload["workflow_run"]
    body["head_sha"] = sha
    body["created_at"] = created or started
    body["head_commit"] = {
        "id": sha,
        "message": title,
        "author": {"name": "Dev User", "email": email},
    }
    return payload


def job(
    job_id: int,
    run_id: int,
    *,
    name: str,
    conclusion: str = "failure",
    attempt: int = 1,
    workflow: str = "CI",
    started: str = "2024-06-03T10:00:10Z",
    completed: str = "2024-06-03T10:03:50Z",
    steps: list[tuple[str, str, str, str]] | None = None,
) -> dict[str, Any]:
    """A completed workflow_job delivery; each step is (name, conclusion, started, completed)."""
    payload = slack_payloads.workflow_job(
        job_id,
        run_id,
        name=name,
        conclusion=conclusion,
        workflow=workflow,
        started=started,
        completed=completed,
        steps=[
            {
                "name": step_name,
                "status": "completed",
                "conclusion": step_conclusion,
                "number": number,
                "started_at": step_started,
                "completed_at": step_completed,
            }
            for number, (step_name, step_conclusion, step_started, step_completed) in enumerate(
                steps or [], start=1
            )
        ],
    )
    payload["workflow_job"]["run_attempt"] = attempt
    return payload


def deployment_status(
    deployment_id: int,
    status_id: int,
    *,
    state: str,
    environment: str = "production",
    ref: str = "main",
    at: str = "2024-06-03T10:10:00Z",
    description: str = "Deploy failed: health check",
) -> dict[str, Any]:
    """A deployment_status delivery."""
    return {
        "action": "created",
        "deployment_status": {
            "id": status_id,
            "state": state,
            "description": description,
            "environment": environment,
            "log_url": f"https://github.com/octo-org/widget/deployments/{deployment_id}/log",
            "target_url": f"https://github.com/octo-org/widget/deployments/{deployment_id}",
            "created_at": at,
            "updated_at": at,
            "creator": {"login": "dev-user", "id": 7001, "type": "User"},
        },
        "deployment": {
            "id": deployment_id,
            "sha": "1919191919191919191919191919191919191919",
            "ref": ref,
            "task": "deploy",
            "environment": environment,
            "created_at": "2024-06-03T10:00:00Z",
            "updated_at": at,
            "creator": {"login": "dev-user", "id": 7001, "type": "User"},
        },
        "repository": repository("widget"),
        "installation": {"id": INSTALLATION_ID},
        "sender": {"login": "dev-user", "id": 7001, "type": "User"},
    }
