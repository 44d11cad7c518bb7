"""GitHub webhook payloads for the Slack tests: octo-org's repositories under installation 424242."""

from __future__ import annotations

from typing import Any

INSTALLATION_ID = 424242
REPOSITORY_IDS = {"widget": 1001, "gadget": 1002, "gizmo": 1003}


def repository(name: str = "widget") -> dict[str, Any]:
    return {
        "id": REPOSITORY_IDS.get(name, 1000 + len(name)),
        "name": name,
        "full_name": f"octo-org/{name}",
        "private": False,
        "owner": {"login": "octo-org", "id": 5001, "type": "Organization"},
        "html_url": f"https://github.com/octo-org/{name}",
        "default_branch": "main",
    }


def installation_created(names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "action": "created",
        "installation": {
            "id": INSTALLATION_ID,
            "account": {"login": "octo-org", "id": 5001, "type": "Organization"},
        },
        "repositories": [
            {
                "id": repository(name)["id"],
                "name": name,
                "full_name": f"octo-org/{name}",
                "private": False,
            }
            for name in names
        ],
        "sender": {"login": "dev-user", "id": 7001, "type": "User"},
    }


def installation_deleted() -> dict[str, Any]:
    payload = installation_created(())
    payload["action"] = "deleted"
    return payload


def workflow_run(
    run_id: int,
    *,
    action: str = "completed",
    name: str = "CI",
    status: str = "completed",
    conclusion: str | None = "success",
    branch: str = "main",
    title: str = "Update parser",
    event: str = "push",
    attempt: int = 1,
    run_number: int = 100,
    started: str = "2024-06-03T10:00:00Z",
    updated: str = "2024-06-03T10:05:12Z",
    repo: str = "widget",
) -> dict[str, Any]:
    return {
        "action": action,
        "workflow_run": {
            "id": run_id,
            "name": name,
            "display_title": title,
            "path": ".github/workflows/ci.yml",
            "workflow_id": 777,
            "run_number": run_number,
            "run_attempt": attempt,
            "event": event,
            "status": status,
            "conclusion": conclusion,
            "head_branch": branch,
            "head_sha": "1919191919191919191919191919191919191919",
            "created_at": started,
            "run_started_at": started,
            "updated_at": updated,
            "html_url": f"https://github.com/octo-org/{repo}/actions/runs/{run_id}",
            "pull_requests": [],
            "head_commit": {"id": "1919191919191919191919191919191919191919", "message": title},
            "head_repository": repository(repo),
            "actor": {"login": "dev-user", "id": 7001, "type": "User"},
            "triggering_actor": {"login": "dev-user", "id": 7001, "type": "User"},
        },
        "workflow": {"id": 777, "name": name, "path": ".github/workflows/ci.yml"},
        "repository": repository(repo),
        "installation": {"id": INSTALLATION_ID},
        "sender": {"login": "dev-user", "id": 7001, "type": "User"},
    }


def workflow_job(
    job_id: int,
    run_id: int,
    *,
    name: str,
    action: str = "completed",
    status: str = "completed",
    conclusion: str | None = "success",
    created: str = "2024-06-03T10:00:00Z",
    started: str | None = "2024-06-03T10:00:00Z",
    completed: str | None = "2024-06-03T10:01:00Z",
    steps: list[dict[str, Any]] | None = None,
    workflow: str = "CI",
    branch: str = "main",
    repo: str = "widget",
) -> dict[str, Any]:
    return {
        "action": action,
        "workflow_job": {
            "id": job_id,
            "run_id": run_id,
            "run_attempt": 1,
            "workflow_name": workflow,
            "head_branch": branch,
            "head_sha": "1919191919191919191919191919191919191919",
            "name": name,
            "status": status,
            "conclusion": conclusion,
            "created_at": created,
            "started_at": started,
            "completed_at": completed,
            "steps": steps or [],
            "labels": ["ubuntu-latest"],
            "runner_id": 81 if status != "queued" else None,
            "runner_name": "GitHub Actions 81" if status != "queued" else None,
            "runner_group_id": 1,
            "runner_group_name": "GitHub Actions",
            "html_url": f"https://github.com/octo-org/{repo}/actions/runs/{run_id}/job/{job_id}",
        },
        "repository": repository(repo),
        "installation": {"id": INSTALLATION_ID},
        "sender": {"login": "dev-user", "id": 7001, "type": "User"},
    }
