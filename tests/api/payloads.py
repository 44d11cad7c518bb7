"""Builders of the `workflow_run`, `workflow_job` and `release` payloads these tests send."""

from __future__ import annotations

from typing import Any

REPOSITORY = {"id": 1001, "name": "widget", "full_name": "octo-org/widget", "private": False}
INSTALLATION = {"id": 424242}


def workflow_run(
    run_id: int,
    *,
    name: str = "CI",
    workflow_id: int = 7001,
    attempt: int = 1,
    status: str = "completed",
    conclusion: str | None = "success",
    branch: str = "main",
    event: str = "push",
    started: str = "2024-06-03T10:00:00Z",
    updated: str = "2024-06-03T10:10:00Z",
) -> dict[str, Any]:
    """Return a `workflow_run` delivery's payload."""
    return {
        "action": "completed" if status == "completed" else "in_progress",
        "workflow_run": {
            "id": run_id,
            "name": name,
            "workflow_id": workflow_id,
            "run_number": run_id % 1000,
            "run_attempt": attempt,
            "event": event,
            "status": status,
            "conclusion": conclusion,
            "head_branch": branch,
            "head_sha": "a" * 40,
            "created_at": started,
            "run_started_at": started,
            "updated_at": updated,
            "html_url": f"https://github.com/octo-org/widget/actions/runs/{run_id}",
            "pull_requests": [],
        },
        "repository": REPOSITORY,
        "installation": INSTALLATION,
    }


def workflow_job(
    job_id: int,
    run_id: int,
    name: str,
    *,
    started: str | None,
    completed: str | None,
    status: str = "completed",
    conclusion: str | None = "success",
    workflow: str = "CI",
    branch: str = "main",
    attempt: int = 1,
    steps: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return a `workflow_job` delivery's payload."""
    return {
        "action": status if status != "in_progress" else "in_progress",
        "workflow_job": {
            "id": job_id,
            "run_id": run_id,
            "run_attempt": attempt,
            "workflow_name": workflow,
            "head_branch": branch,
            "head_sha": "a" * 40,
            "name": name,
            "status": status,
            "conclusion": conclusion if status == "completed" else None,
            "created_at": started,
            "started_at": started,
            "completed_at": completed if status == "completed" else None,
            "steps": steps or [],
            "labels": ["ubuntu-latest"],
            "runner_id": 81 if started else None,
            "runner_name": "GitHub Actions 81" if started else None,
            "html_url": f"https://github.com/octo-org/widget/actions/runs/{run_id}/job/{job_id}",
        },
        "repository": REPOSITORY,
        "installation": INSTALLATION,
    }


def step(number: int, name: str, started: str, completed: str) -> dict[str, Any]:
    """Return one entry of a job's `steps` list."""
    return {
        "name": name,
        "status": "completed",
        "conclusion": "success",
        "number": number,
        "started_at": started,
        "completed_at": completed,
    }


def release(release_id: int, tag: str, *, action: str = "published", name: str | None = None) -> dict[str, Any]:
    """Return a `release` delivery's payload."""
    return {
        "action": action,
        "release": {
            "id": release_id,
            "tag_name": tag,
            "name": name or tag,
            "draft": False,
            "prerelease": False,
            "created_at": "2024-06-03T09:55:00Z",
            "published_at": "2024-06-03T09:56:00Z",
            "html_url": f"https://github.com/octo-org/widget/releases/tag/{tag}",
            "author": {"login": "dev-user"},
        },
        "repository": REPOSITORY,
        "installation": INSTALLATION,
    }
