"""Write functions for installations, repositories, pull requests, releases, deployments,
check suites and tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlmodel import Session, SQLModel

from storage import prefetch
from storage.models import (
    CheckSuite,
    Deployment,
    Installation,
    PullRequest,
    Release,
    Repository,
    Tag,
    WorkflowRun,
)
from storage.runs import fit_to_columns, merge_fields, seconds_between
from storage.types import utc_now

RowT = TypeVar("RowT", bound=SQLModel)

DEPLOYMENT_STATE_RANK = {"pending": 0, "queued": 0, "in_progress": 1}
DEPLOYMENT_FINAL_STATES = frozenset({"success", "failure", "error"})


def upsert_row(session: Session, model: type[RowT], key: Any, values: dict[str, Any]) -> RowT:
    """Create or update a row by primary key with every known value.

    `updated_at` moves only when a value changed, so a delivery that repeats what is stored
    (every `workflow_job` repeats its repository) writes nothing.
    """
    row = prefetch.get_row(session, model, key)
    if row is None:
        fitted = fit_to_columns(model, values)
        row = model(**{name: value for name, value in fitted.items() if value is not None})
        prefetch.note_row_stored(session, row)
        session.add(row)
    elif not merge_fields(row, values, forward=True):
        return row
    if hasattr(row, "updated_at"):
        row.updated_at = utc_now()  # type: ignore[attr-defined]
    session.add(row)
    return row


def upsert_installation(
    *, session: Session, installation_id: int, status: str | None = None, **fields: Any
) -> Installation:
    """Record an installation; `status` is active, suspended or deleted.

    Deleted is final: GitHub gives a reinstalled App a new installation id, so an event that
    would make a deleted installation active again is a late or repeated delivery.
    """
    stored = prefetch.get_row(session, Installation, installation_id)
    if stored is not None and stored.status == "deleted":
        status = None
    values = {"id": installation_id, "status": status, **fields}
    return upsert_row(session, Installation, installation_id, values)


def upsert_repository(
    *,
    session: Session,
    repository_id: int,
    full_name: str,
    installation_id: int | None = None,
    removed: bool | None = None,
    **fields: Any,
) -> Repository:
    """Record a repository and the installation it belongs to."""
    values = {
        "id": repository_id,
        "full_name": full_name,
        "installation_id": installation_id,
        "removed": removed,
        **fields,
    }
    return upsert_row(session, Repository, repository_id, values)


def get_installation(*, session: Session, installation_id: int) -> Installation | None:
    """Return a stored installation."""
    return prefetch.get_row(session, Installation, installation_id)


def upsert_pull_request(*, session: Session, pull_request_id: int, **fields: Any) -> PullRequest:
    """Record a pull request's number, state and head."""
    # NOTE: events are applied in arrival order, so a late `synchronize` can bring back an
    # older head SHA until the next event. Ordering them needs GitHub's `updated_at` stored.
    return upsert_row(session, PullRequest, pull_request_id, {"id": pull_request_id, **fields})


def find_pull_requests_for_run(*, session: Session, run: WorkflowRun) -> list[PullRequest]:
    """Return the stored pull requests a run belongs to, open or closed.

    Runs of fork pull requests carry an empty `pull_requests` list, so a run is matched by its
    head SHA and head repository. The branch name alone is never enough, because a fork's
    branch can share its name with a branch of the base repository.
    """
    if run.pull_request_numbers:
        return list(
            session.scalars(
                select(PullRequest).where(
                    PullRequest.repo == run.repo,
                    PullRequest.number.in_(run.pull_request_numbers),  # type: ignore[attr-defined]
                )
            ).all()
        )
    if not run.head_sha:
        return []
    statement = select(PullRequest).where(
        PullRequest.repo == run.repo, PullRequest.head_sha == run.head_sha
    )
    if run.head_repository:
        statement = statement.where(PullRequest.head_repository == run.head_repository)
    return list(session.scalars(statement).all())


def upsert_release(*, session: Session, release_id: int, **fields: Any) -> Release:
    """Record a release and its latest state.

    Deleted is final because GitHub never reuses a release id, so a late `edited` or
    `published` delivery updates the other fields but leaves the state deleted.
    """
    stored = session.get(Release, release_id)
    if stored is not None and stored.state == "deleted":
        fields = {**fields, "state": None}
    return upsert_row(session, Release, release_id, {"id": release_id, **fields})


def upsert_deployment(*, session: Session, deployment_id: int, **fields: Any) -> Deployment:
    """Record a deployment's own fields."""
    deployment = upsert_row(session, Deployment, deployment_id, {"id": deployment_id, **fields})
    if deployment.state in DEPLOYMENT_FINAL_STATES:
        deployment.duration_s = seconds_between(deployment.created_at, deployment.state_at)
    return deployment


def record_deployment_status(
    *, session: Session, deployment_id: int, state: str, state_at: datetime | None, **fields: Any
) -> tuple[Deployment, bool]:
    """Merge a deployment status; return the deployment and whether it just reached a final state.

    A final state (success, failure, error) is never replaced by a pending or in-progress
    status that arrives late.
    """
    deployment = session.get(Deployment, deployment_id)
    if deployment is None:
        deployment = Deployment(id=deployment_id, repo=fields.get("repo", ""))
    was_final = deployment.state in DEPLOYMENT_FINAL_STATES
    if was_final and state not in DEPLOYMENT_FINAL_STATES:
        merge_fields(deployment, fields, forward=False)
    else:
        merge_fields(deployment, {**fields, "state": state, "state_at": state_at}, forward=True)
    if deployment.state in DEPLOYMENT_FINAL_STATES:
        deployment.duration_s = seconds_between(deployment.created_at, deployment.state_at)
    deployment.updated_at = utc_now()
    session.add(deployment)
    return deployment, deployment.state in DEPLOYMENT_FINAL_STATES and not was_final


def upsert_check_suite(*, session: Session, check_suite_id: int, **fields: Any) -> CheckSuite:
    """Record a check suite's status and conclusion."""
    return upsert_row(session, CheckSuite, check_suite_id, {"id": check_suite_id, **fields})


def record_tag(
    *, session: Session, repo: str, name: str, sha: str | None, pusher: str | None,
    pushed_at: datetime | None, deleted: bool,
) -> Tag:
    """Record a tag push or deletion."""
    key = fit_to_columns(Tag, {"repo": repo, "name": name})
    tag = session.get(Tag, (key["repo"], key["name"])) or Tag(**key)
    tag.deleted = deleted
    if not deleted:
        tag.sha = sha
    tag.pusher = fit_to_columns(Tag, {"pusher": pusher})["pusher"] or tag.pusher
    tag.pushed_at = pushed_at or tag.pushed_at
    session.add(tag)
    return tag


def mark_repositories_removed(*, session: Session, repository_ids: list[int]) -> None:
    """Flag repositories that were removed from their installation (their data stays)."""
    if repository_ids:
        session.execute(
            update(Repository)
            .where(Repository.id.in_(repository_ids))  # type: ignore[attr-defined]
            .values(removed=True, updated_at=utc_now())
        )
