"""Signed `workflow_job` deliveries shaped like GitHub's, for the ingestion benchmarks.

Each job yields three deliveries (queued, in_progress, completed) with the full `repository`,
`organization`, `sender` and `installation` objects GitHub sends, so bodies weigh 9-20 KB.
Jobs are released in waves: the queued events of a wave, then its in_progress events, then its
completed events, as when a workflow run fans out into parallel jobs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

API = "https://api.github.com"
STEP_NAMES = (
    "Set up job",
    "Run actions/checkout@b4ffde65f46336ab88eb53be808477a3936bae11",
    "Run actions/setup-python@0b93645e9fea7318ecaed2b359559ac225c90a2b",
    "Run actions/cache@13aacd865c20de90d75de3b17ebe84f7a17d57d2",
    "Install dependencies",
    "Lint",
    "Type check",
    "Run unit tests",
    "Run integration tests",
    "Build wheel",
    "Upload coverage",
    "Upload artifact",
    "Save cache",
    "Post Set up Python",
    "Post Checkout repository",
)
JOB_NAMES = ("build", "lint", "test (3.11)", "test (3.12)", "integration-tests", "publish", "docs")


@dataclass(frozen=True)
class Delivery:
    """One signed webhook request: its id, headers and raw body."""

    delivery_id: str
    headers: dict[str, str]
    body: bytes


def iso(moment: datetime) -> str:
    """Format a time like GitHub's payloads do."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def user_object(login: str, user_id: int, kind: str = "User") -> dict[str, Any]:
    """Return a GitHub user or organization object with all its URL fields."""
    base = f"{API}/users/{login}"
    return {
        "login": login,
        "id": user_id,
        "node_id": f"MDQ6VXNlcjE{user_id}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "url": base,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def repository_object(owner: str, name: str, repository_id: int) -> dict[str, Any]:
    """Return a repository object with the fields GitHub includes in every webhook."""
    full = f"{owner}/{name}"
    base = f"{API}/repos/{full}"
    url_fields = {
        f"{kind}_url": f"{base}/{kind}"
        for kind in (
            "forks", "teams", "hooks", "events", "tags", "languages", "stargazers",
            "contributors", "subscribers", "subscription", "merges", "downloads", "deployments",
        )
    }
    template_fields = {
        "keys_url": f"{base}/keys{{/key_id}}",
        "collaborators_url": f"{base}/collaborators{{/collaborator}}",
        "issue_events_url": f"{base}/issues/events{{/number}}",
        "assignees_url": f"{base}/assignees{{/user}}",
        "branches_url": f"{base}/branches{{/branch}}",
        "blobs_url": f"{base}/git/blobs{{/sha}}",
        "git_tags_url": f"{base}/git/tags{{/sha}}",
        "git_refs_url": f"{base}/git/refs{{/sha}}",
        "trees_url": f"{base}/git/trees{{/sha}}",
        "statuses_url": f"{base}/statuses/{{sha}}",
        "commits_url": f"{base}/commits{{/sha}}",
        "git_commits_url": f"{base}/git/commits{{/sha}}",
        "comments_url": f"{base}/comments{{/number}}",
        "issue_comment_url": f"{base}/issues/comments{{/number}}",
        "contents_url": f"{base}/contents/{{+path}}",
        "compare_url": f"{base}/compare/{{base}}...{{head}}",
        "archive_url": f"{base}/{{archive_format}}{{/ref}}",
        "issues_url": f"{base}/issues{{/number}}",
        "pulls_url": f"{base}/pulls{{/number}}",
        "milestones_url": f"{base}/milestones{{/number}}",
        "notifications_url": f"{base}/notifications{{?since,all,participating}}",
        "labels_url": f"{base}/labels{{/name}}",
        "releases_url": f"{base}/releases{{/id}}",
    }
    return {
        "id": repository_id,
        "node_id": f"R_kgDOH{repository_id}",
        "name": name,
        "full_name": full,
        "private": False,
        "owner": user_object(owner, 9_000_000 + repository_id % 1000, "Organization"),
        "html_url": f"https://github.com/{full}",
        "description": f"The {name} service: build, test and release pipelines.",
        "fork": False,
        "url": base,
        **url_fields,
        **template_fields,
        "created_at": "2021-03-02T10:11:12Z",
        "updated_at": "2024-05-06T07:08:09Z",
        "pushed_at": "2024-05-06T07:08:00Z",
        "git_url": f"git://github.com/{full}.git",
        "ssh_url": f"git@github.com:{full}.git",
        "clone_url": f"https://github.com/{full}.git",
        "svn_url": f"https://github.com/{full}",
        "homepage": None,
        "size": 48213,
        "stargazers_count": 120,
        "watchers_count": 120,
        "language": "Python",
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": False,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 14,
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": 31,
        "license": {
            "key": "mit",
            "name": "MIT License",
            "spdx_id": "MIT",
            "url": f"{API}/licenses/mit",
            "node_id": "MDc6TGljZW5zZTEz",
        },
        "allow_forking": True,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": ["ci", "python", "release"],
        "visibility": "public",
        "forks": 14,
        "open_issues": 31,
        "watchers": 120,
        "default_branch": "main",
        "custom_properties": {"team": "platform", "tier": "1", "service-owner": "ci-infra"},
    }


def enterprise_object(slug: str, enterprise_id: int) -> dict[str, Any]:
    """Return the `enterprise` object GitHub adds for repositories of an enterprise account."""
    return {
        "id": enterprise_id,
        "slug": slug,
        "name": "Octo Bench Enterprise",
        "node_id": f"E_kgDOAB{enterprise_id}",
        "avatar_url": f"https://avatars.githubusercontent.com/b/{enterprise_id}?v=4",
        "description": "Enterprise account that owns the benchmark organization.",
        "website_url": "https://example.com",
        "html_url": f"https://github.com/enterprises/{slug}",
        "created_at": "2020-01-02T03:04:05Z",
        "updated_at": "2024-01-02T03:04:05Z",
    }


def step_objects(count: int, phase: str, started: datetime) -> list[dict[str, Any]]:
    """Return the `steps` list of a job: all queued, running (first done) or all completed."""
    steps = []
    moment = started
    for number in range(1, count + 1):
        name = STEP_NAMES[(number - 1) % len(STEP_NAMES)]
        if count > len(STEP_NAMES):
            name = f"{name} #{number}"
        step: dict[str, Any] = {
            "name": name,
            "status": "queued",
            "conclusion": None,
            "number": number,
            "started_at": None,
            "completed_at": None,
        }
        if phase == "completed" or (phase == "in_progress" and number == 1):
            step.update(
                status="completed",
                conclusion="success",
                started_at=iso(moment),
                completed_at=iso(moment + timedelta(seconds=7)),
            )
            moment += timedelta(seconds=7)
        elif phase == "in_progress" and number == 2:
            step.update(status="in_progress", started_at=iso(moment))
        steps.append(step)
    return steps


def job_payload(
    *, phase: str, job_id: int, run_id: int, repository: dict[str, Any], organization: dict[str, Any],
    sender: dict[str, Any], installation_id: int, step_count: int, created: datetime, name: str,
) -> dict[str, Any]:
    """Return one `workflow_job` payload of a job at `phase` (queued, in_progress, completed)."""
    started = created + timedelta(seconds=12)
    full = repository["full_name"]
    running = phase != "queued"
    job = {
        "id": job_id,
        "run_id": run_id,
        "workflow_name": "CI",
        "head_branch": "main",
        "run_url": f"{API}/repos/{full}/actions/runs/{run_id}",
        "run_attempt": 1,
        "node_id": f"CR_kwDOH{job_id}",
        "head_sha": hashlib.sha1(str(run_id).encode()).hexdigest(),
        "url": f"{API}/repos/{full}/actions/jobs/{job_id}",
        "html_url": f"https://github.com/{full}/actions/runs/{run_id}/job/{job_id}",
        "status": phase,
        "conclusion": "success" if phase == "completed" else None,
        "created_at": iso(created),
        "started_at": iso(started) if running else iso(created),
        "completed_at": iso(started + timedelta(seconds=7 * step_count)) if phase == "completed" else None,
        "name": name,
        "steps": step_objects(step_count, phase, started) if running else [],
        "check_run_url": f"{API}/repos/{full}/check-runs/{job_id}",
        "labels": ["ubuntu-latest"],
        "runner_id": 40 + job_id % 8 if running else None,
        "runner_name": f"GitHub Actions {40 + job_id % 8}" if running else None,
        "runner_group_id": 2 if running else None,
        "runner_group_name": "GitHub Actions" if running else None,
    }
    return {
        "action": phase,
        "workflow_job": job,
        "repository": repository,
        "enterprise": enterprise_object("octo-bench", 4_242),
        "organization": organization,
        "sender": sender,
        "installation": {"id": installation_id, "node_id": f"MDIzOkludGVncmF0aW9u{installation_id}"},
    }


def sign(secret: str, body: bytes) -> str:
    """Return the `X-Hub-Signature-256` header value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def make_delivery(secret: str, payload: dict[str, Any], installation_id: int) -> Delivery:
    """Serialize and sign a payload as GitHub does, under a fresh delivery id."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    delivery_id = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
        "X-GitHub-Event": "workflow_job",
        "X-GitHub-Delivery": delivery_id,
        "X-GitHub-Hook-ID": "401234567",
        "X-GitHub-Hook-Installation-Target-ID": str(installation_id),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-Hub-Signature-256": sign(secret, body),
    }
    return Delivery(delivery_id=delivery_id, headers=headers, body=body)


def generate_deliveries(
    count: int, *, secret: str, seed: int = 7, wave: int = 40, first_job_id: int = 10_000_000_000
) -> list[Delivery]:
    """Return `count` deliveries: queued, in_progress and completed events of count/3 jobs."""
    rng = random.Random(seed)
    organization = user_object("octo-bench", 9_100_001, "Organization")
    senders = [user_object(f"dev{index}", 8_000_000 + index) for index in range(20)]
    repositories = [repository_object("octo-bench", f"service-{index}", 700_000 + index) for index in range(10)]
    created = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)

    deliveries: list[Delivery] = []
    job_id = first_job_id
    run_id = 9_000_000_000
    while len(deliveries) < count:
        run_id += 1
        repository = rng.choice(repositories)
        installation_id = 50_000_000 + repository["id"] % 3
        jobs = []
        for _ in range(wave):
            job_id += 1
            if job_id % 8 == 0:
                run_id += 1
            jobs.append((job_id, run_id, rng.randint(10, 30), rng.choice(JOB_NAMES)))
        for phase in ("queued", "in_progress", "completed"):
            for one_job_id, one_run_id, step_count, name in jobs:
                payload = job_payload(
                    phase=phase, job_id=one_job_id, run_id=one_run_id, repository=repository,
                    organization=organization, sender=rng.choice(senders),
                    installation_id=installation_id, step_count=step_count,
                    created=created, name=name,
                )
                deliveries.append(make_delivery(secret, payload, installation_id))
    return deliveries[:count]
