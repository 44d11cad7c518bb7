"""Builders of webhook payloads for the GitHub App tests, with the fields the handlers read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import BotClient

REPO = "octo/widget"
INSTALLATION_ID = 77
START = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def repository(full_name: str = REPO, default_branch: str = "main") -> dict[str, Any]:
    return {"id": 501, "name": full_name.split("/")[1], "full_name": full_name, "default_branch": default_branch, "private": False}


def pull_request_event(
    number: int, *, head_sha: str, head_repo: str = REPO, base: str = "main", state: str = "open", action: str = "opened"
) -> dict[str, Any]:
    """A `pull_request` delivery."""
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "id": 880000 + number,
            "number": number,
            "state": state,
            "title": f"Change {number}",
            "html_url": f"https://github.com/{REPO}/pull/{number}",
            "head": {"ref": "feature", "sha": head_sha, "repo": {"full_name": head_repo}},
            "base": {"ref": base, "sha": "d" * 40, "repo": {"full_name": REPO}},
        },
        "repository": repository(),
        "installation": {"id": INSTALLATION_ID},
    }


def workflow_run_event(
    run_id: int,
    *,
    head_sha: str,
    started: datetime,
    seconds: float,
    head_branch: str = "feature",
    event: str = "pull_request",
    pull_numbers: Sequence[int] = (),
    workflow_id: int = 10,
    name: str = "CI",
    conclusion: str | None = "success",
    attempt: int = 1,
    head_repo: str = REPO,
) -> dict[str, Any]:
    """A `workflow_run` `completed` delivery."""
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id,
            "name": name,
            "path": ".github/workflows/ci.yml",
            "workflow_id": workflow_id,
            "run_number": run_id % 1000,
            "run_attempt": attempt,
            "event": event,
            "status": "completed",
            "conclusion": conclusion,
            "head_branch": head_branch,
            "head_sha": head_sha,
            "created_at": iso(started),
            "run_started_at": iso(started),
            "updated_at": iso(started + timedelta(seconds=seconds)),
            "html_url": f"https://github.com/{REPO}/actions/runs/{run_id}",
            "pull_requests": [{"number": number} for number in pull_numbers],
            "head_repository": {"full_name": head_repo},
            "repository": repository(),
        },
        "workflow": {"id": workflow_id, "name": name},
        "repository": repository(),
        "installation": {"id": INSTALLATION_ID},
    }


def workflow_job_event(
    job_id: int,
    run_id: int,
    *,
    name: str,
    started: datetime,
    seconds: float,
    head_sha: str,
    queue_seconds: float = 5.0,
    workflow_name: str = "CI",
    head_branch: str = "feature",
    conclusion: str = "success",
    attempt: int = 1,
    steps: Sequence[tuple[str, float]] = (),
) -> dict[str, Any]:
    """A `workflow_job` `completed` delivery; steps run back to back from the job's start."""
    step_entries = []
    at = started
    for number, (step_name, step_seconds) in enumerate(steps, start=1):
        step_entries.append(
            {"name": step_name, "number": number, "status": "completed", "conclusion": "success",
             "started_at": iso(at), "completed_at": iso(at + timedelta(seconds=step_seconds))}
        )
        at += timedelta(seconds=step_seconds)
    return {
        "action": "completed",
        "workflow_job": {
            "id": job_id,
            "run_id": run_id,
            "run_attempt": attempt,
            "name": name,
            "workflow_name": workflow_name,
            "head_branch": head_branch,
            "head_sha": head_sha,
            "status": "completed",
            "conclusion": conclusion,
            "runner_name": "runner-1",
            "created_at": iso(started - timedelta(seconds=queue_seconds)),
            "started_at": iso(started),
            "completed_at": iso(started + timedelta(seconds=seconds)),
            "html_url": f"https://github.com/{REPO}/actions/runs/{run_id}/job/{job_id}",
            "steps": step_entries,
        },
        "repository": repository(),
        "installation": {"id": INSTALLATION_ID},
    }


def installation_event(action: str, installation_id: int = INSTALLATION_ID) -> dict[str, Any]:
    """An `installation` delivery."""
    return {"action": action, "installation": {"id": installation_id, "account": {"login": "octo", "type": "Organization"}}}


def push_event(*, ref: str, after: str, modified: Sequence[str] = (), forced: bool = False) -> dict[str, Any]:
    """A `push` delivery with one commit that modified the given paths."""
    return {
        "ref": ref,
        "before": "a" * 40,
        "after": after,
        "forced": forced,
        "created": False,
        "deleted": False,
        "commits": [{"id": after, "added": [], "removed": [], "modified": list(modified)}],
        "head_commit": {"id": after, "timestamp": iso(START)},
        "repository": repository(),
        "installation": {"id": INSTALLATION_ID},
    }


def send_run(
    bot: BotClient,
    run_id: int,
    *,
    head_sha: str,
    jobs: Sequence[tuple[str, float]],
    started: datetime = START,
    sequential: bool = True,
    job_steps: dict[str, Sequence[tuple[str, float]]] | None = None,
    **run_fields: Any,
) -> None:
    """Send a run's jobs (one after another, or all at once) and then its `completed` event."""
    at = started + timedelta(seconds=5)
    end = at
    workflow_name = run_fields.get("name", "CI")
    head_branch = run_fields.get("head_branch", "feature")
    for index, (job_name, seconds) in enumerate(jobs):
        bot.send(
            "workflow_job",
            workflow_job_event(
                run_id * 1000 + index, run_id, name=job_name, started=at, seconds=seconds, head_sha=head_sha,
                workflow_name=workflow_name, head_branch=head_branch,
                steps=(job_steps or {}).get(job_name, ()), attempt=run_fields.get("attempt", 1),
            ),
        )
        end = max(end, at + timedelta(seconds=seconds))
        if sequential:
            at += timedelta(seconds=seconds + 1)
    total = (end - started).total_seconds() + 2
    bot.send("workflow_run", workflow_run_event(run_id, head_sha=head_sha, started=started, seconds=total, **run_fields))


def send_baseline(bot: BotClient, *, count: int, jobs: Sequence[tuple[str, float]], first_run_id: int = 500) -> None:
    """Send `count` successful push runs of CI on main, each one hour apart."""
    for index in range(count):
        send_run(
            bot, first_run_id + index, head_sha=f"{index:040x}", jobs=jobs,
            started=START - timedelta(hours=count - index), head_branch="main", event="push",
        )
