"""Read and write functions for the GitHub App tables: PR comment rows and their lease,
repository configuration, and installation token and permission problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlmodel import Session

from storage.models import Installation, Repository, RunAttempt, WorkflowRun
from storage.models_github_app import InstallationApiState, PullRequestComment, RepoConfigState
from storage.outbox import OutboxMessage, OutboxStatus
from storage.types import utc_now

TOKEN_OK = "ok"
TOKEN_REJECTED = "rejected"
# Installation.status values under which the bot makes no call for the installation.
DISABLED_INSTALLATION_STATUSES = frozenset({"deleted", "suspended"})


# --- installations -------------------------------------------------------------------------


def get_installation_state(*, session: Session, installation_id: int) -> InstallationApiState | None:
    """Return what the bot recorded about calling GitHub as an installation."""
    return session.get(InstallationApiState, installation_id)


def installation_block_reason(*, session: Session, installation_id: int) -> str | None:
    """Return why no GitHub call may be made for an installation, or None if calls are allowed.

    An installation is blocked when GitHub reported it deleted or suspended, or when its
    last token request was rejected. An `installation` event that makes it active again
    lifts the block (see clear_installation_problems).
    """
    installation = session.get(Installation, installation_id)
    if installation is not None and installation.status in DISABLED_INSTALLATION_STATUSES:
        return f"installation {installation_id} is {installation.status}"
    state = session.get(InstallationApiState, installation_id)
    if state is not None and state.token_status == TOKEN_REJECTED:
        return state.token_error or f"GitHub rejected the token request of installation {installation_id}"
    return None


def record_token_rejected(*, session: Session, installation_id: int, error: str) -> None:
    """Record that GitHub rejected an installation token request, so no further call is made for it."""
    state = session.get(InstallationApiState, installation_id) or InstallationApiState(
        installation_id=installation_id
    )
    state.token_status = TOKEN_REJECTED
    state.token_error = error
    state.token_failed_at = utc_now()
    state.updated_at = utc_now()
    session.add(state)


def clear_installation_problems(*, session: Session, installation_id: int) -> None:
    """Forget a rejected token and missing permissions, after GitHub reports the installation active."""
    state = session.get(InstallationApiState, installation_id)
    if state is None:
        return
    state.token_status = TOKEN_OK
    state.token_error = None
    state.token_failed_at = None
    state.missing_permissions = []
    state.updated_at = utc_now()
    session.add(state)


def record_missing_permission(
    *, session: Session, installation_id: int, permission: str, operation: str
) -> bool:
    """Record a permission that GitHub reported missing; return True if it was not known yet."""
    state = session.get(InstallationApiState, installation_id) or InstallationApiState(
        installation_id=installation_id
    )
    known = {entry.get("permission") for entry in state.missing_permissions}
    if permission in known:
        return False
    # Assign a new list, because SQLAlchemy does not track changes inside a JSON value.
    state.missing_permissions = [
        *state.missing_permissions,
        {"permission": permission, "operation": operation, "reported_at": utc_now().isoformat()},
    ]
    state.updated_at = utc_now()
    session.add(state)
    return True


# --- pull request comments -----------------------------------------------------------------


def note_pull_request_head(
    *,
    session: Session,
    repo: str,
    pr_number: int,
    installation_id: int,
    head_sha: str | None,
    head_repository: str | None,
    base_ref: str | None,
    seen_at: datetime | None,
) -> PullRequestComment:
    """Record which head commit a PR's comment should describe; an older run never wins."""
    row = session.get(PullRequestComment, (repo, pr_number))
    if row is None:
        row = PullRequestComment(repo=repo, pr_number=pr_number)
    row.installation_id = installation_id
    is_newer = row.head_seen_at is None or seen_at is None or seen_at >= row.head_seen_at
    if head_sha and (row.head_sha is None or is_newer):
        row.head_sha = head_sha
        row.head_seen_at = seen_at or row.head_seen_at
        row.head_repository = head_repository or row.head_repository
    row.base_ref = base_ref or row.base_ref
    row.updated_at = utc_now()
    session.add(row)
    return row


def get_pr_comment(*, session: Session, repo: str, pr_number: int) -> PullRequestComment | None:
    """Return the comment row of a pull request."""
    return session.get(PullRequestComment, (repo, pr_number))


def acquire_comment_lock(
    *, session: Session, repo: str, pr_number: int, owner: str, lease: timedelta
) -> bool:
    """Take the lease on a PR's comment; return False if another sender holds it.

    One UPDATE decides. On PostgreSQL a second sender waits for the first one's row lock and
    then finds the lease taken, and on SQLite the write transactions are serialised.
    """
    now = utc_now()
    result = session.execute(
        update(PullRequestComment)
        .where(
            PullRequestComment.repo == repo,
            PullRequestComment.pr_number == pr_number,
            or_(
                PullRequestComment.lock_until.is_(None),  # type: ignore[union-attr]
                PullRequestComment.lock_until < now,  # type: ignore[operator]
                PullRequestComment.lock_owner == owner,
            ),
        )
        .values(lock_owner=owner, lock_until=now + lease)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def finish_comment(
    *, session: Session, repo: str, pr_number: int, owner: str, comment_id: int, body_digest: str
) -> None:
    """Store the comment id and the digest of the body sent, and release the lease."""
    session.execute(
        update(PullRequestComment)
        .where(PullRequestComment.repo == repo, PullRequestComment.pr_number == pr_number)
        .values(
            comment_id=comment_id,
            body_digest=body_digest,
            refreshed_at=utc_now(),
            lock_owner=None,
            lock_until=None,
        )
    )


def release_comment_lock(*, session: Session, repo: str, pr_number: int, owner: str) -> None:
    """Release the lease if this sender still holds it."""
    session.execute(
        update(PullRequestComment)
        .where(
            PullRequestComment.repo == repo,
            PullRequestComment.pr_number == pr_number,
            PullRequestComment.lock_owner == owner,
        )
        .values(lock_owner=None, lock_until=None)
    )


def get_default_branch(*, session: Session, repo: str) -> str | None:
    """Return a repository's default branch as last seen in a webhook."""
    return session.scalars(select(Repository.default_branch).where(Repository.full_name == repo)).first()


def is_repository_removed(*, session: Session, repo: str) -> bool:
    """Tell whether a repository was removed from its installation (its data is kept)."""
    removed = session.scalars(select(Repository.removed).where(Repository.full_name == repo)).first()
    return bool(removed)


def has_pending_message(*, session: Session, kind: str, target: str) -> bool:
    """Tell whether an outbox message of a kind waits, unclaimed, for a target."""
    statement = select(OutboxMessage.id).where(
        OutboxMessage.kind == kind,
        OutboxMessage.target == target,
        OutboxMessage.status == OutboxStatus.PENDING.value,
    )
    return session.scalars(statement.limit(1)).first() is not None


# --- runs shown in a comment --------------------------------------------------------------

# Events of runs that test a pull request's merge or head; their branch name can be a fork's.
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")


def list_runs_for_commit(*, session: Session, repo: str, head_sha: str) -> list[WorkflowRun]:
    """Return the runs of a repository for one head commit, oldest first."""
    statement = (
        select(WorkflowRun)
        .where(WorkflowRun.repo == repo, WorkflowRun.head_sha == head_sha)
        .order_by(WorkflowRun.created_at, WorkflowRun.id)  # type: ignore[arg-type]
    )
    return list(session.scalars(statement).all())


def list_baseline_runs(
    *, session: Session, run: WorkflowRun, base_branch: str, limit: int
) -> list[tuple[WorkflowRun, RunAttempt]]:
    """Return the newest successful runs of a run's workflow on the base branch, newest first.

    Only runs of the base repository's own branch count: a pull request from a fork's branch
    of the same name runs with `event` pull_request and another head repository.
    """
    statement = (
        select(WorkflowRun, RunAttempt)
        .join(
            RunAttempt,
            (RunAttempt.run_id == WorkflowRun.id) & (RunAttempt.attempt == WorkflowRun.latest_attempt),
        )
        .where(
            WorkflowRun.repo == run.repo,
            WorkflowRun.head_branch == base_branch,
            WorkflowRun.id != run.id,
            RunAttempt.status == "completed",
            RunAttempt.conclusion == "success",
            or_(WorkflowRun.event.is_(None), WorkflowRun.event.not_in(PULL_REQUEST_EVENTS)),  # type: ignore[union-attr]
            or_(WorkflowRun.head_repository.is_(None), WorkflowRun.head_repository == run.repo),  # type: ignore[union-attr]
        )
        .order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc())  # type: ignore[union-attr]
        .limit(limit)
    )
    if run.workflow_id is not None:
        statement = statement.where(WorkflowRun.workflow_id == run.workflow_id)
    else:
        statement = statement.where(WorkflowRun.workflow_name == run.workflow_name)
    return [(row[0], row[1]) for row in session.execute(statement).all()]


# --- repository configuration --------------------------------------------------------------


def get_repo_config_state(*, session: Session, repo: str) -> RepoConfigState | None:
    """Return the stored configuration state of a repository."""
    return session.get(RepoConfigState, repo)


def mark_repo_config_stale(*, session: Session, repo: str, installation_id: int | None) -> RepoConfigState:
    """Ask for the configuration file to be read again before its next use."""
    state = session.get(RepoConfigState, repo) or RepoConfigState(repo=repo)
    state.installation_id = installation_id or state.installation_id
    state.stale = True
    state.updated_at = utc_now()
    session.add(state)
    return state


def store_repo_config(
    *,
    session: Session,
    repo: str,
    installation_id: int | None,
    source: str,
    config: dict[str, Any] | None,
    blob_sha: str | None,
) -> RepoConfigState:
    """Put a valid configuration (or the defaults, with `config` None) in force."""
    state = session.get(RepoConfigState, repo) or RepoConfigState(repo=repo)
    state.installation_id = installation_id or state.installation_id
    state.source = source
    state.config = config
    state.blob_sha = blob_sha
    state.error = None
    state.error_at = None
    state.fetched_at = utc_now()
    state.stale = False
    state.updated_at = utc_now()
    session.add(state)
    return state


def store_repo_config_error(
    *,
    session: Session,
    repo: str,
    installation_id: int | None,
    problems: list[dict[str, str]],
    blob_sha: str | None,
) -> RepoConfigState:
    """Record an invalid file; the configuration in force stays as it was."""
    state = session.get(RepoConfigState, repo) or RepoConfigState(repo=repo)
    state.installation_id = installation_id or state.installation_id
    state.error = problems
    state.error_at = utc_now()
    state.blob_sha = blob_sha
    state.fetched_at = utc_now()
    state.stale = False
    state.updated_at = utc_now()
    session.add(state)
    return state


# --- status --------------------------------------------------------------------------------


@dataclass
class GitHubAppStatus:
    """The GitHub App side of a repository, as `/release status` shows it."""

    repo: str
    installation_id: int | None = None
    installation_status: str | None = None
    blocked_reason: str | None = None
    missing_permissions: list[dict[str, str]] = field(default_factory=list)
    config_source: str = "default"
    config_problems: list[dict[str, str]] = field(default_factory=list)
    config_fetched_at: datetime | None = None


def describe_repository(*, session: Session, repo: str) -> GitHubAppStatus:
    """Gather the installation, permission and configuration problems of one repository."""
    repo = repo.lower()
    status = GitHubAppStatus(repo=repo)
    repository = session.scalars(select(Repository).where(Repository.full_name == repo)).first()
    config_state = session.get(RepoConfigState, repo)
    installation_id = (repository.installation_id if repository else None) or (
        config_state.installation_id if config_state else None
    )
    if config_state is not None:
        status.config_source = config_state.source
        status.config_problems = list(config_state.error or [])
        status.config_fetched_at = config_state.fetched_at
    if installation_id is None:
        return status

    status.installation_id = installation_id
    installation = session.get(Installation, installation_id)
    status.installation_status = installation.status if installation else None
    status.blocked_reason = installation_block_reason(session=session, installation_id=installation_id)
    state = session.get(InstallationApiState, installation_id)
    if state is not None:
        status.missing_permissions = list(state.missing_permissions)
    return status
