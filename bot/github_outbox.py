"""Shared parts of the GitHub outbox senders: the installation guard, and the rules that turn
a failed GitHub call into a retry or a final failure of the outbox message."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from bot.github_client import (
    AppCredentialsRejected,
    GitHubCallError,
    GitHubUnavailable,
    InstallationUnavailable,
    MissingPermission,
    RateLimited,
)
from bot.outbox import PermanentFailure, RetryLater
from storage import github_app
from storage.db import session_scope
from storage.outbox import OutboxMessage

logger = logging.getLogger(__name__)

# The permission app.yml grants for each operation, named when GitHub sends no
# X-Accepted-GitHub-Permissions header with its 403.
PERMISSION_OF_OPERATION = {
    "create a pull request comment": "pull_requests=write",
    "update a pull request comment": "pull_requests=write",
    "list pull request comments": "pull_requests=read",
    "list pull requests of a commit": "pull_requests=read",
    "read a repository file": "contents=read",
    "re-run failed jobs": "actions=write",
}
# Permissions that app.yml requests. Among the sets GitHub accepts, one of these is named first.
MANIFEST_PERMISSIONS = frozenset(
    {"pull_requests=write", "pull_requests=read", "contents=read", "actions=read", "actions=write"}
)
# Prefix of the error stored on a message that hit the secondary rate limit once, so that the
# retry can tell it is the retry.
SECONDARY_LIMIT_MARK = "secondary rate limit"


def blocked_reason(engine: Engine, installation_id: int) -> str | None:
    """Return why no call may be made for an installation, or None."""
    with session_scope(engine) as session:
        return github_app.installation_block_reason(session=session, installation_id=installation_id)


def permission_to_grant(exc: MissingPermission) -> str:
    """Return the permission to grant: the one app.yml requests, if GitHub accepts it."""
    for accepted in exc.accepted:
        if accepted in MANIFEST_PERMISSIONS:
            return accepted
    if exc.accepted:
        return exc.accepted[0]
    return PERMISSION_OF_OPERATION.get(exc.operation, "unknown")


def outbox_error(engine: Engine, message: OutboxMessage, exc: GitHubCallError) -> RetryLater | PermanentFailure:
    """Record what a failed call teaches about the installation and return the error to raise."""
    extra = {
        "outbox_id": message.id,
        "kind": message.kind,
        "target": message.target,
        "installation_id": exc.installation_id,
        "status_code": exc.status_code,
    }
    if isinstance(exc, InstallationUnavailable):
        with session_scope(engine) as session:
            github_app.record_token_rejected(session=session, installation_id=exc.installation_id, error=str(exc))
        logger.warning(
            "installation token request rejected; no further GitHub calls for this installation "
            "until an installation event reports it active again: %s",
            exc,
            extra=extra,
        )
        return PermanentFailure(str(exc), code="installation_unavailable")

    if isinstance(exc, AppCredentialsRejected):
        logger.error("GitHub rejected the App's credentials: %s", exc, extra=extra)
        return PermanentFailure(str(exc), code="app_credentials_rejected")

    if isinstance(exc, MissingPermission):
        permission = permission_to_grant(exc)
        with session_scope(engine) as session:
            is_new = github_app.record_missing_permission(
                session=session, installation_id=exc.installation_id, permission=permission, operation=exc.operation
            )
        if is_new:
            accepted = "; ".join(exc.accepted) or permission
            logger.warning(
                "GitHub App lacks a permission: grant %s to %s (GitHub accepts: %s), then accept "
                "the new permissions on the installation",
                permission.replace("=", ": "),
                exc.operation,
                accepted,
                extra=extra,
            )
        return PermanentFailure(str(exc), code="missing_permission")

    if isinstance(exc, RateLimited):
        if exc.secondary and (message.last_error or "").startswith(SECONDARY_LIMIT_MARK):
            # One retry only: the message fails, and the next completed run queues a new refresh.
            return PermanentFailure(f"{exc}, again after one retry", code="secondary_rate_limit")
        prefix = SECONDARY_LIMIT_MARK if exc.secondary else "rate limit"
        return RetryLater(f"{prefix}: {exc}", retry_after=max(1.0, exc.retry_after), throttle_target=True)

    if isinstance(exc, GitHubUnavailable):
        return RetryLater(str(exc))

    return PermanentFailure(str(exc), code=f"http_{exc.status_code}" if exc.status_code else "rejected")
