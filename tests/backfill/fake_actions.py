"""The Actions routes of the fake GitHub API: runs listed in pages, run attempts, jobs per
attempt in pages, and the App's installation on a repository.

Pages follow GitHub's Link header. The fake uses its own small page sizes so that a test
needs only a few runs to span several pages. A path in `broken_paths` fails with a network
error, as an interrupted connection does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.github_app.fake_github import API_PREFIX, Call, FakeGitHub

ACTIONS_ROUTES = {
    "runs": re.compile(r"^/repos/([^/]+/[^/]+)/actions/runs$"),
    "attempt": re.compile(r"^/repos/([^/]+/[^/]+)/actions/runs/(\d+)/attempts/(\d+)$"),
    "attempt_jobs": re.compile(r"^/repos/([^/]+/[^/]+)/actions/runs/(\d+)/attempts/(\d+)/jobs$"),
    "repo_installation": re.compile(r"^/repos/([^/]+/[^/]+)/installation$"),
}
REPO = "octo-org/widget"
REPOSITORY = {"id": 501, "name": "widget", "full_name": "Octo-Org/widget", "private": False}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def rest_run(
    run_id: int,
    *,
    attempt: int,
    created: datetime,
    started: datetime,
    seconds: int,
    status: str = "completed",
    conclusion: str | None = "success",
) -> dict[str, Any]:
    """A run object as GET /repos/{owner}/{repo}/actions/runs returns it, for one attempt."""
    return {
        "id": run_id,
        "name": "CI",
        "run_number": run_id % 1000,
        "run_attempt": attempt,
        "event": "push",
        "status": status,
        "conclusion": conclusion if status == "completed" else None,
        "workflow_id": 11,
        "path": ".github/workflows/ci.yml",
        "head_branch": "main",
        "head_sha": f"{run_id:040x}",
        "display_title": f"Commit {run_id}",
        "created_at": stamp(created),
        "run_started_at": stamp(started),
        "updated_at": stamp(started + timedelta(seconds=seconds)),
        "html_url": f"https://github.com/{REPO}/actions/runs/{run_id}",
        "actor": {"login": "octocat", "type": "User"},
        "triggering_actor": {"login": "octocat", "type": "User"},
        "pull_requests": [],
        "repository": REPOSITORY,
        "head_repository": REPOSITORY,
    }


def rest_job(job_id: int, run_id: int, attempt: int, *, created: datetime, queued: int, seconds: int) -> dict[str, Any]:
    """A job object as GET .../attempts/{n}/jobs returns it: completed after `seconds`."""
    started = created + timedelta(seconds=queued)
    completed = started + timedelta(seconds=seconds)
    return {
        "id": job_id,
        "run_id": run_id,
        "run_attempt": attempt,
        "name": f"build {job_id}",
        "workflow_name": "CI",
        "head_branch": "main",
        "head_sha": f"{run_id:040x}",
        "status": "completed",
        "conclusion": "success",
        "created_at": stamp(created),
        "started_at": stamp(started),
        "completed_at": stamp(completed),
        "labels": ["ubuntu-latest"],
        "runner_id": 7,
        "runner_name": "GitHub Actions 7",
        "runner_group_name": "GitHub Actions",
        "html_url": f"https://github.com/{REPO}/actions/runs/{run_id}/job/{job_id}",
        "steps": [
            {"name": "Set up job", "status": "completed", "conclusion": "success", "number": 1,
             "started_at": stamp(started), "completed_at": stamp(completed)},
        ],
    }


@dataclass
class FakeActions(FakeGitHub):
    """The fake GitHub API with the Actions routes a backfill reads."""

    # Runs newest first, as GitHub lists them; each is the object of its latest attempt.
    runs: list[dict[str, Any]] = field(default_factory=list)
    # (run id, attempt) -> the run object of an earlier attempt.
    attempts: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    # (run id, attempt) -> the jobs of that attempt.
    jobs: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)
    # Repository (lowercase owner/name) -> installation id; other repositories get 404.
    installations: dict[str, int] = field(default_factory=dict)
    run_page_size: int = 2
    job_page_size: int = 2
    broken_paths: set[str] = field(default_factory=set)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(API_PREFIX)
        for route, pattern in ACTIONS_ROUTES.items():
            match = pattern.match(path)
            if match:
                break
        else:
            return super().handle(request)
        with self.lock:
            self.calls.append(Call(request.method, route, f"{path}?{request.url.query.decode()}", None))
        if request.method != "GET":
            return self.reject(request, "method not allowed")
        failure = self.check_jwt(request, 0) if route == "repo_installation" else self.check_token(request)
        if failure is not None:
            return failure
        if path in self.broken_paths:
            raise httpx.ConnectError("connection reset by peer", request=request)
        with self.lock:
            queued = self.planned.get(route)
            if queued:
                return queued.pop(0)
        return getattr(self, f"serve_{route}")(request, match)

    def paths(self, route: str) -> list[str]:
        """Return the paths with query strings that a route received, in order."""
        return [call.path for call in self.calls if call.route == route]

    def page(self, request: httpx.Request, items: list[Any], size: int) -> tuple[list[Any], dict[str, str]]:
        number = int(request.url.params.get("page", "1"))
        chunk = items[(number - 1) * size : number * size]
        headers = dict(self.rate_headers)
        if number * size < len(items):
            headers["link"] = f'<{request.url.copy_set_param("page", number + 1)}>; rel="next"'
        return chunk, headers

    def serve_runs(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        created = request.url.params.get("created", "")
        if not created.startswith(">="):
            return self.reject(request, f"created filter {created!r}")
        selected = [run for run in self.runs if run["created_at"][:10] >= created[2:]]
        chunk, headers = self.page(request, selected, self.run_page_size)
        return httpx.Response(200, json={"total_count": len(selected), "workflow_runs": chunk}, headers=headers)

    def serve_attempt(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        run = self.attempts.get((int(match.group(2)), int(match.group(3))))
        if run is None:
            return self.answer(404, {"message": "Not Found"})
        return self.answer(200, run)

    def serve_attempt_jobs(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        jobs = self.jobs.get((int(match.group(2)), int(match.group(3))), [])
        chunk, headers = self.page(request, jobs, self.job_page_size)
        return httpx.Response(200, json={"total_count": len(jobs), "jobs": chunk}, headers=headers)

    def serve_repo_installation(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        installation_id = self.installations.get(match.group(1).lower())
        if installation_id is None:
            return self.answer(404, {"message": "Not Found"})
        return self.answer(200, {"id": installation_id, "account": {"login": "octo-org"}})
