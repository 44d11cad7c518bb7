"""GitHub's example payloads (`@octokit/webhooks-examples`) through the real webhook endpoint.

Many examples break GitHub's own schemas (nulls, empty names, a `completed` action with a
`queued` status), so these tests check that ingestion is lenient and that every field the
bot reads is stored as the payload has it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session

from storage.models import (
    CheckSuite,
    Delivery,
    Deployment,
    Installation,
    Job,
    Metric,
    PullRequest,
    Release,
    Repository,
    RunAttempt,
    Step,
    Tag,
    WorkflowRun,
)
from tests.conftest import BotClient
from tests.github.conftest import clear_facts, count_rows, delivery_statuses

HANDLED_EVENTS = (
    "workflow_run",
    "workflow_job",
    "check_suite",
    "release",
    "deployment",
    "deployment_status",
    "pull_request",
    "installation",
    "installation_repositories",
    "push",
)
UNHANDLED_EVENTS = ("issues", "star")


def utc(value: str | None) -> datetime | None:
    """Parse an example's timestamp as UTC unless it carries another offset."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def seconds(start: str | None, end: str | None) -> float | None:
    """Return the non-negative seconds between two example timestamps, or None."""
    if start is None or end is None:
        return None
    return max(0.0, (utc(end) - utc(start)).total_seconds())  # type: ignore[operator]


def lower(value: str | None) -> str | None:
    return value.lower() if value else value


def check_repository(session: Session, payload: dict[str, Any]) -> None:
    repository = payload.get("repository")
    if not repository:
        return
    row = session.get(Repository, repository["id"])
    assert row is not None, f"repository {repository['id']} not stored"
    assert row.full_name == repository["full_name"].lower()
    installation = payload.get("installation")
    if installation:
        assert row.installation_id == installation["id"]
        assert session.get(Installation, installation["id"]) is not None


def check_workflow_run(session: Session, payload: dict[str, Any]) -> None:
    run_payload = payload["workflow_run"]
    run = session.get(WorkflowRun, run_payload["id"])
    assert run is not None
    assert run.repo == payload["repository"]["full_name"].lower()
    assert run.workflow_name == (
        run_payload.get("name") or (payload.get("workflow") or {}).get("name")
    )
    assert run.workflow_id == run_payload.get("workflow_id")
    assert run.run_number == run_payload.get("run_number")
    assert run.event == run_payload.get("event")
    assert run.head_branch == run_payload.get("head_branch")
    assert run.head_sha == run_payload.get("head_sha")
    assert run.head_repository == lower((run_payload.get("head_repository") or {}).get("full_name"))
    assert run.created_at == utc(run_payload.get("created_at"))
    assert run.pull_request_numbers == [entry["number"] for entry in run_payload["pull_requests"]]

    attempt = session.get(RunAttempt, (run.id, run_payload.get("run_attempt") or 1))
    assert attempt is not None
    assert attempt.status == run_payload["status"]
    assert attempt.conclusion == run_payload["conclusion"]
    assert attempt.run_started_at == utc(run_payload.get("run_started_at"))
    if run_payload["status"] == "completed":
        assert attempt.completed_at == utc(run_payload["updated_at"])
        assert attempt.duration_s == seconds(
            run_payload["run_started_at"], run_payload["updated_at"]
        )
        assert count_rows(session, Metric) >= 1
    else:
        assert attempt.duration_s is None
        assert count_rows(session, Metric) == 0
    check_repository(session, payload)


def check_workflow_job(session: Session, payload: dict[str, Any]) -> None:
    job_payload = payload["workflow_job"]
    job = session.get(Job, job_payload["id"])
    assert job is not None
    assert job.id == job_payload["id"]
    assert job.name == job_payload["name"]
    assert job.status == job_payload["status"]
    assert job.conclusion == job_payload["conclusion"]
    assert job.run_id == job_payload["run_id"]
    assert job.run_attempt == (job_payload.get("run_attempt") or 1)
    assert job.workflow_name == job_payload.get("workflow_name")
    assert job.head_branch == job_payload.get("head_branch")
    assert job.head_sha == job_payload.get("head_sha")
    assert job.labels == job_payload["labels"]
    assert job.runner_name == job_payload.get("runner_name")
    assert job.runner_group_name == job_payload.get("runner_group_name")
    assert job.created_at == utc(job_payload.get("created_at"))
    assert job.started_at == utc(job_payload.get("started_at"))
    if job_payload["status"] == "completed":
        assert job.completed_at == utc(job_payload["completed_at"])
        assert job.duration_s == seconds(job_payload["started_at"], job_payload["completed_at"])
        assert job.queue_s == seconds(job_payload.get("created_at"), job_payload["started_at"])
    else:
        assert job.completed_at is None
        assert job.duration_s is None
    if job_payload["status"] in ("queued", "waiting"):
        assert job.queue_s is None

    # The job's run exists even though no workflow_run event came.
    assert session.get(WorkflowRun, job_payload["run_id"]) is not None
    steps = {
        step.number: step for step in session.scalars(select(Step).where(Step.job_id == job.id))
    }
    assert sorted(steps) == sorted(entry["number"] for entry in job_payload["steps"])
    for entry in job_payload["steps"]:
        step = steps[entry["number"]]
        assert step.name == entry["name"]
        assert step.status == entry["status"]
        assert step.conclusion == entry["conclusion"]
        assert step.duration_s == seconds(entry.get("started_at"), entry.get("completed_at"))
    check_repository(session, payload)


def check_check_suite(session: Session, payload: dict[str, Any]) -> None:
    suite_payload = payload["check_suite"]
    suite = session.get(CheckSuite, suite_payload["id"])
    assert suite is not None
    assert suite.repo == payload["repository"]["full_name"].lower()
    assert suite.status == suite_payload["status"]
    assert suite.conclusion == suite_payload["conclusion"]
    assert suite.head_sha == suite_payload["head_sha"]
    assert suite.head_branch == suite_payload["head_branch"]
    assert suite.app_slug == (suite_payload.get("app") or {}).get("slug")
    check_repository(session, payload)


RELEASE_STATES = {
    "created": "created",
    "edited": "created",
    "prereleased": "prereleased",
    "published": "published",
    "released": "published",
    "unpublished": "unpublished",
    "deleted": "deleted",
}


def check_release(session: Session, payload: dict[str, Any]) -> None:
    release_payload = payload["release"]
    release = session.get(Release, release_payload["id"])
    assert release is not None
    assert release.repo == payload["repository"]["full_name"].lower()
    assert release.tag_name == release_payload["tag_name"]
    assert release.name == release_payload["name"]
    assert release.draft == release_payload["draft"]
    assert release.prerelease == release_payload["prerelease"]
    assert release.state == RELEASE_STATES[payload["action"]]
    assert release.author == release_payload["author"]["login"]
    assert release.created_at == utc(release_payload["created_at"])
    assert release.published_at == utc(release_payload["published_at"])
    check_repository(session, payload)


def check_deployment(session: Session, payload: dict[str, Any]) -> None:
    deployment_payload = payload["deployment"]
    deployment = session.get(Deployment, deployment_payload["id"])
    assert deployment is not None
    assert deployment.repo == payload["repository"]["full_name"].lower()
    assert deployment.environment == deployment_payload["environment"]
    assert deployment.ref == deployment_payload["ref"]
    assert deployment.sha == deployment_payload["sha"]
    assert deployment.task == deployment_payload["task"]
    assert deployment.creator == deployment_payload["creator"]["login"]
    assert deployment.created_at == utc(deployment_payload["created_at"])

    status = payload.get("deployment_status")
    if status is None:
        assert deployment.state is None
        assert deployment.duration_s is None
        return
    assert deployment.state == status["state"]
    assert deployment.state_at == utc(status.get("updated_at") or status.get("created_at"))
    metrics = session.scalars(select(Metric).where(Metric.metric_type == "deployment_time")).all()
    if status["state"] in ("success", "failure", "error"):
        expected = seconds(
            deployment_payload["created_at"], status.get("updated_at") or status["created_at"]
        )
        assert deployment.duration_s == expected
        assert [metric.value for metric in metrics] == [expected]
    else:
        assert deployment.duration_s is None
        assert metrics == []
    check_repository(session, payload)


def check_pull_request(session: Session, payload: dict[str, Any]) -> None:
    pull_payload = payload["pull_request"]
    pull = session.get(PullRequest, pull_payload["id"])
    assert pull is not None
    assert pull.repo == payload["repository"]["full_name"].lower()
    assert pull.number == pull_payload["number"]
    assert pull.state == pull_payload["state"]
    assert pull.title == pull_payload["title"]
    assert pull.head_sha == pull_payload["head"]["sha"]
    assert pull.head_ref == pull_payload["head"]["ref"]
    assert pull.head_repository == lower((pull_payload["head"].get("repo") or {}).get("full_name"))
    assert pull.base_ref == pull_payload["base"]["ref"]
    check_repository(session, payload)


INSTALLATION_STATES = {
    "created": "active",
    "new_permissions_accepted": "active",
    "unsuspend": "active",
    "suspend": "suspended",
    "deleted": "deleted",
}


def check_installation(session: Session, payload: dict[str, Any]) -> None:
    installation_payload = payload["installation"]
    installation = session.get(Installation, installation_payload["id"])
    assert installation is not None
    assert installation.account_login == installation_payload["account"]["login"]
    assert installation.account_type == installation_payload["account"]["type"]
    if "action" in payload and payload["action"] in INSTALLATION_STATES:
        assert installation.status == INSTALLATION_STATES[payload["action"]]
    expected_removed = {
        **{entry["id"]: False for entry in payload.get("repositories") or []},
        **{entry["id"]: False for entry in payload.get("repositories_added") or []},
        **{entry["id"]: True for entry in payload.get("repositories_removed") or []},
    }
    repositories = {row.id: row for row in session.scalars(select(Repository))}
    assert sorted(repositories) == sorted(expected_removed)
    for repository_id, removed in expected_removed.items():
        assert repositories[repository_id].installation_id == installation_payload["id"]
        assert repositories[repository_id].removed is removed


def check_push(session: Session, payload: dict[str, Any]) -> None:
    tags = session.scalars(select(Tag)).all()
    if not payload["ref"].startswith("refs/tags/"):
        assert tags == []
        return
    assert len(tags) == 1
    tag = tags[0]
    assert tag.repo == payload["repository"]["full_name"].lower()
    assert tag.name == payload["ref"].removeprefix("refs/tags/")
    assert tag.deleted is payload["deleted"]
    assert tag.sha == (None if payload["deleted"] else payload["after"])
    assert tag.pusher == payload["pusher"]["name"]
    check_repository(session, payload)


CHECKS: dict[str, Callable[[Session, dict[str, Any]], None]] = {
    "workflow_run": check_workflow_run,
    "workflow_job": check_workflow_job,
    "check_suite": check_check_suite,
    "release": check_release,
    "deployment": check_deployment,
    "deployment_status": check_deployment,
    "pull_request": check_pull_request,
    "installation": check_installation,
    "installation_repositories": check_installation,
    "push": check_push,
}


@pytest.mark.parametrize("event", HANDLED_EVENTS)
def test_examples_stored_as_sent(
    bot: BotClient, webhook_examples: dict[str, list[dict[str, Any]]], event: str
) -> None:
    examples = webhook_examples[event]
    assert examples, f"the package has no {event} examples"
    for index, payload in enumerate(examples):
        clear_facts(bot)
        delivery_id = f"example-{event}-{index}"

        response = bot.send(event, payload, delivery_id=delivery_id)

        label = f"{event} example {index} ({payload.get('action')})"
        assert response.status_code == 202, f"{label}: {response.status_code} {response.text}"
        with bot.session() as session:
            delivery = session.scalars(
                select(Delivery).where(Delivery.delivery_id == delivery_id)
            ).one()
            assert delivery.status == "done", f"{label}: {delivery.status} {delivery.error}"
            try:
                CHECKS[event](session, payload)
            except AssertionError as exc:
                raise AssertionError(f"{label}: {exc}") from exc


def test_examples_all_in_one_database(
    bot: BotClient, webhook_examples: dict[str, list[dict[str, Any]]]
) -> None:
    sent = 0
    for event in HANDLED_EVENTS:
        for index, payload in enumerate(webhook_examples[event]):
            response = bot.send(event, payload, delivery_id=f"all-{event}-{index}", wait=False)
            assert response.status_code == 202, f"{event} example {index}: {response.text}"
            sent += 1
    bot.wait_idle()

    with bot.session() as session:
        statuses = delivery_statuses(session)
    assert len(statuses) == sent
    assert {status for status in statuses.values()} == {"done"}


@pytest.mark.parametrize("event", UNHANDLED_EVENTS)
def test_examples_of_unhandled_events_ignored(
    bot: BotClient, webhook_examples: dict[str, list[dict[str, Any]]], event: str
) -> None:
    for index, payload in enumerate(webhook_examples[event]):
        response = bot.send(event, payload, delivery_id=f"ignored-{event}-{index}")

        assert response.status_code == 202
        assert response.json() == {"status": "ignored", "event": event}
    with bot.session() as session:
        statuses = delivery_statuses(session)
        assert set(statuses.values()) == {"ignored"}
        assert len(statuses) == len(webhook_examples[event])
        assert count_rows(session, Repository) == 0
        assert count_rows(session, Installation) == 0
