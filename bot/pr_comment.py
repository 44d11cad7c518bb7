"""One build-profile comment per pull request, written by outbox senders.

A completed run queues a `github_pr_comment` message per pull request (see
handlers/github/reactions/pr_comment.py). The sender renders the comment from storage at
send time, so one message covers every run completed before it is sent. While a message
for a pull request waits unsent, no second one is queued. Before calling GitHub the sender
takes a lease on the PR's comment row, so two senders never create two comments: the
second waits and then edits the comment the first one created. A comment id that was
never stored (the process died after creating it) is found again by the hidden marker.

A run from a fork arrives with no pull request numbers; when no stored pull request
matches its head SHA and head repository, a `github_pr_lookup` message asks GitHub which
open pull requests have that head commit.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from bot.build_profile import profile_commit
from bot.config import Settings
from bot.github_client import GitHubApp, GitHubCallError, MissingPermission, RequestRejected
from bot.github_outbox import blocked_reason, outbox_error
from bot.outbox import PermanentFailure, RetryLater, Sender, register_sender
from bot.render_markdown import MARKER, CommentView, render_build_profile
from bot.repo_config import (
    CONFIG_PATH,
    REFRESH_KIND,
    ConfigProblem,
    EffectiveConfig,
    RepoConfigSender,
    effective_config,
    ensure_config,
)
from storage import github as github_facts
from storage import github_app, outbox
from storage.db import session_scope
from storage.outbox import OutboxMessage
from storage.types import utc_now

logger = logging.getLogger(__name__)

PR_COMMENT_KIND = "github_pr_comment"
PR_LOOKUP_KIND = "github_pr_lookup"
# Job events of a run can arrive after its workflow_run `completed` event; waiting this long
# before rendering lets most of them in.
SETTLE_SECONDS = 10.0
COMMENT_LEASE = timedelta(minutes=2)
# A sender that finds the lease taken waits this long, doubling with each attempt, so that
# a lease left by a dead process expires well before the outbox gives up on the message.
LEASE_BUSY_RETRY_SECONDS = 5.0


def comment_target(repo: str, number: int) -> str:
    """Return the outbox target of a pull request's comment, such as `octo/widget#42`."""
    return f"{repo}#{number}"


def queue_comment_refresh(
    *,
    session: Session,
    repo: str,
    number: int,
    installation_id: int,
    head_sha: str | None,
    head_repository: str | None,
    base_ref: str | None,
    seen_at: datetime | None,
    dedupe_key: str,
) -> OutboxMessage | None:
    """Record the PR's head and queue a refresh of its comment, unless one already waits."""
    github_app.note_pull_request_head(
        session=session,
        repo=repo,
        pr_number=number,
        installation_id=installation_id,
        head_sha=head_sha,
        head_repository=head_repository,
        base_ref=base_ref,
        seen_at=seen_at,
    )
    target = comment_target(repo, number)
    if github_app.has_pending_message(session=session, kind=PR_COMMENT_KIND, target=target):
        return None
    return outbox.enqueue(
        session=session,
        kind=PR_COMMENT_KIND,
        target=target,
        payload={"repo": repo, "number": number},
        dedupe_key=dedupe_key,
        not_before=utc_now() + timedelta(seconds=SETTLE_SECONDS),
    )


def body_digest(body: str) -> str:
    """Return the SHA-256 of a comment body, to skip edits that change nothing."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class PullRequestCommentSender:
    """Outbox sender of `github_pr_comment` messages: create or update the build-profile comment."""

    def __init__(self, engine: Engine, github: GitHubApp) -> None:
        self.engine = engine
        self.github = github

    def __call__(self, message: OutboxMessage) -> dict[str, Any]:
        repo = str(message.payload.get("repo") or "")
        number = message.payload.get("number")
        if not repo or not isinstance(number, int):
            raise PermanentFailure(f"the message has no repo or pull request number: {message.payload!r}")
        with session_scope(self.engine) as session:
            row = github_app.get_pr_comment(session=session, repo=repo, pr_number=number)
            installation_id = row.installation_id if row else None
            head_sha = row.head_sha if row else None
            removed = github_app.is_repository_removed(session=session, repo=repo)
        if installation_id is None or head_sha is None:
            return {"skipped": f"no head commit is recorded for {comment_target(repo, number)}"}
        reason = blocked_reason(self.engine, installation_id)
        if reason is None and removed:
            reason = f"{repo} was removed from installation {installation_id}"
        if reason is not None:
            logger.info("PR comment skipped: %s", reason, extra={"target": message.target, "installation_id": installation_id})
            return {"skipped": reason}

        effective = self.load_config(message, installation_id, repo)
        if not effective.config.pr_comments.enabled:
            return {"skipped": "pull request comments are turned off in .github/release-bot.yml"}
        return self.write_locked(message, installation_id, repo, number, effective)

    def render(self, repo: str, number: int, effective: EffectiveConfig) -> str:
        """Render the comment from the runs stored for the PR's latest head commit."""
        with session_scope(self.engine) as session:
            row = github_app.get_pr_comment(session=session, repo=repo, pr_number=number)
            assert row is not None and row.head_sha is not None
            base_branch = row.base_ref or github_app.get_default_branch(session=session, repo=repo)
            view = CommentView(
                head_sha=row.head_sha,
                workflows=profile_commit(
                    session, repo=repo, head_sha=row.head_sha, config=effective.config, base_branch=base_branch
                ),
                config_problems=effective.problems,
                timeline=effective.config.pr_comments.timeline,
            )
        return render_build_profile(view)

    def load_config(self, message: OutboxMessage, installation_id: int, repo: str) -> EffectiveConfig:
        """Return the repository configuration, reading the file first if needed.

        A file the App may not read (a missing `contents` permission, or another 4xx) does
        not stop the comment: the stored or default configuration is used, and the comment
        names the problem. Other failures propagate as a retry or a final failure.
        """
        try:
            return ensure_config(self.engine, self.github, installation_id=installation_id, repo=repo)
        except (MissingPermission, RequestRejected) as exc:
            outbox_error(self.engine, message, exc)
            with session_scope(self.engine) as session:
                current = effective_config(session=session, repo=repo)
            current.problems = [*current.problems, ConfigProblem(CONFIG_PATH, "(file)", f"could not be read: {exc}")]
            return current
        except GitHubCallError as exc:
            raise outbox_error(self.engine, message, exc) from exc

    def write_locked(
        self, message: OutboxMessage, installation_id: int, repo: str, number: int, effective: EffectiveConfig
    ) -> dict[str, Any]:
        """Render, then create or update the comment, while holding the PR's lease.

        Rendering under the lease means that of two senders, the later one always writes
        what was stored last.
        """
        owner = f"outbox:{message.id}:{message.attempts}"
        with session_scope(self.engine) as session:
            acquired = github_app.acquire_comment_lock(
                session=session, repo=repo, pr_number=number, owner=owner, lease=COMMENT_LEASE
            )
        if not acquired:
            wait = min(COMMENT_LEASE.total_seconds(), LEASE_BUSY_RETRY_SECONDS * 2 ** max(0, message.attempts - 1))
            raise RetryLater(f"another sender is writing the comment of {comment_target(repo, number)}", retry_after=wait)

        try:
            body = self.render(repo, number, effective)
            digest = body_digest(body)
            with session_scope(self.engine) as session:
                row = github_app.get_pr_comment(session=session, repo=repo, pr_number=number)
                comment_id = row.comment_id if row else None
                unchanged = row is not None and row.body_digest == digest
            if comment_id is not None and unchanged:
                action = "unchanged"
            else:
                comment_id, action = self.write(installation_id, repo, number, comment_id, body)
        except GitHubCallError as exc:
            self.release(repo, number, owner)
            raise outbox_error(self.engine, message, exc) from exc
        except BaseException:
            self.release(repo, number, owner)
            raise

        with session_scope(self.engine) as session:
            github_app.finish_comment(
                session=session, repo=repo, pr_number=number, owner=owner, comment_id=comment_id, body_digest=digest
            )
        logger.info(
            "PR comment %s",
            action,
            extra={"target": message.target, "comment_id": comment_id, "installation_id": installation_id},
        )
        return {"comment_id": comment_id, "action": action}

    def write(self, installation_id: int, repo: str, number: int, comment_id: int | None, body: str) -> tuple[int, str]:
        """Update the known or marked comment, or create one; return its id and what was done."""
        if comment_id is None:
            comment_id = self.find_marked_comment(installation_id, repo, number)
        if comment_id is not None:
            if self.github.update_issue_comment(installation_id, repo, comment_id, body) is not None:
                return comment_id, "updated"
            logger.info("PR comment was deleted, creating it again", extra={"repo": repo, "number": number})
        created = self.github.create_issue_comment(installation_id, repo, number, body)
        return int(created["id"]), "created"

    def find_marked_comment(self, installation_id: int, repo: str, number: int) -> int | None:
        """Return the id of a bot comment on the PR that starts with the marker."""
        for comment in self.github.list_issue_comments(installation_id, repo, number):
            user = comment.get("user") if isinstance(comment.get("user"), dict) else {}
            body = comment.get("body") if isinstance(comment.get("body"), str) else ""
            if body.startswith(MARKER) and user.get("type") == "Bot" and isinstance(comment.get("id"), int):
                return comment["id"]
        return None

    def release(self, repo: str, number: int, owner: str) -> None:
        """Release the lease after a failure, so the retry need not wait for it to expire."""
        with session_scope(self.engine) as session:
            github_app.release_comment_lock(session=session, repo=repo, pr_number=number, owner=owner)


class PullRequestLookupSender:
    """Outbox sender of `github_pr_lookup` messages: find a fork run's open pull requests."""

    def __init__(self, engine: Engine, github: GitHubApp) -> None:
        self.engine = engine
        self.github = github

    def __call__(self, message: OutboxMessage) -> dict[str, Any]:
        payload = message.payload
        repo = str(payload.get("repo") or "")
        head_sha = str(payload.get("head_sha") or "")
        head_repository = payload.get("head_repository")
        installation_id = payload.get("installation_id")
        if not repo or not head_sha or not isinstance(installation_id, int):
            raise PermanentFailure(f"the message lacks repo, head_sha or installation_id: {payload!r}")
        reason = blocked_reason(self.engine, installation_id)
        if reason is not None:
            return {"skipped": reason}
        try:
            pulls = self.github.list_pulls_for_commit(installation_id, repo, head_sha)
        except GitHubCallError as exc:
            raise outbox_error(self.engine, message, exc) from exc

        matches = [pull for pull in pulls if is_head_of(pull, head_sha, head_repository)]
        seen_at = datetime.fromisoformat(payload["seen_at"]) if isinstance(payload.get("seen_at"), str) else None
        with session_scope(self.engine) as session:
            for pull in matches:
                store_pull_request(session, repo, pull)
                queue_comment_refresh(
                    session=session,
                    repo=repo,
                    number=int(pull["number"]),
                    installation_id=installation_id,
                    head_sha=head_sha,
                    head_repository=head_repository,
                    base_ref=(pull.get("base") or {}).get("ref"),
                    seen_at=seen_at,
                    dedupe_key=f"{PR_COMMENT_KIND}:{repo}#{pull['number']}:lookup:{message.id}",
                )
        if not matches:
            logger.info("no open pull request has this head commit", extra={"repo": repo, "head_sha": head_sha})
        return {"pull_requests": [int(pull["number"]) for pull in matches]}


def is_head_of(pull: dict[str, Any], head_sha: str, head_repository: str | None) -> bool:
    """Tell whether a pull request from the API is open with this head commit and head repository."""
    head = pull.get("head") if isinstance(pull.get("head"), dict) else {}
    head_repo = head.get("repo") if isinstance(head.get("repo"), dict) else {}
    full_name = str(head_repo.get("full_name") or "").lower()
    if pull.get("state") != "open" or head.get("sha") != head_sha or not isinstance(pull.get("number"), int):
        return False
    return head_repository is None or full_name == head_repository


def store_pull_request(session: Session, repo: str, pull: dict[str, Any]) -> None:
    """Store a pull request read from the API, so later runs of its head match it from storage."""
    if not isinstance(pull.get("id"), int):
        return
    head = pull.get("head") or {}
    head_repo = (head.get("repo") or {}).get("full_name")
    github_facts.upsert_pull_request(
        session=session,
        pull_request_id=int(pull["id"]),
        repo=repo,
        number=int(pull["number"]),
        state=pull.get("state"),
        title=pull.get("title"),
        head_sha=head.get("sha"),
        head_ref=head.get("ref"),
        head_repository=head_repo.lower() if isinstance(head_repo, str) else None,
        base_ref=(pull.get("base") or {}).get("ref"),
        html_url=pull.get("html_url"),
    )


def github_senders(engine: Engine, github: GitHubApp) -> dict[str, Sender]:
    """Return the GitHub senders by outbox kind."""
    return {
        PR_COMMENT_KIND: PullRequestCommentSender(engine, github),
        PR_LOOKUP_KIND: PullRequestLookupSender(engine, github),
        REFRESH_KIND: RepoConfigSender(engine, github),
    }


def register_github_senders(engine: Engine, settings: Settings) -> GitHubApp | None:
    """Register the GitHub senders if the App is configured; return the App client."""
    github = GitHubApp.from_settings(settings)
    if github is None:
        return None
    for kind, sender in github_senders(engine, github).items():
        register_sender(kind, sender)
    return github
