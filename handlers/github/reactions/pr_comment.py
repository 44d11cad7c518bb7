"""Reaction to a completed workflow run: refresh the build-profile comment of its pull requests."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError, OperationalError

from bot.pr_comment import PR_LOOKUP_KIND, queue_comment_refresh
from bot.repo_config import effective_config, queue_config_refresh
from handlers.github.context import HandlerContext
from storage import github as github_facts
from storage import github_app, outbox
from storage.models import RunAttempt, WorkflowRun

logger = logging.getLogger(__name__)


def pull_request_targets(ctx: HandlerContext, run: WorkflowRun) -> tuple[list[tuple[int, str | None]], bool]:
    """Return the number and base branch of each open pull request the run belongs to, and
    whether any pull request (open or closed) was found.

    The run's own `pull_requests` numbers come first, because GitHub fills them for pull
    requests from the same repository. Otherwise stored pull requests are matched by head
    SHA and head repository, never by branch name.
    """
    stored = {pr.number: pr for pr in github_facts.find_pull_requests_for_run(session=ctx.session, run=run)}
    numbers = run.pull_request_numbers or sorted(stored)
    targets = []
    for number in numbers:
        pull_request = stored.get(number)
        if pull_request is not None and pull_request.state == "closed":
            continue
        targets.append((number, pull_request.base_ref if pull_request else None))
    return targets, bool(numbers)


def on_run_completed(ctx: HandlerContext, run: WorkflowRun, attempt: RunAttempt) -> None:
    """Queue a comment refresh for each pull request of a completed run, or a lookup of them.

    The reaction runs in its own savepoint: if it fails, the run's facts are still recorded.
    Database errors that the worker retries (a lost connection, a concurrent insert) propagate.
    """
    if not ctx.settings.has_github_app or run.installation_id is None or not run.repo:
        return
    try:
        with ctx.session.begin_nested():
            queue_refreshes(ctx, run, attempt)
    except (OperationalError, IntegrityError):
        raise
    except Exception:  # a comment is never worth losing the run's facts
        logger.exception("PR comment reaction failed", extra=ctx.log_extra(run_id=run.id))


def queue_refreshes(ctx: HandlerContext, run: WorkflowRun, attempt: RunAttempt) -> None:
    """Queue the comment refreshes or the pull request lookup of a completed run."""
    assert run.installation_id is not None
    extra = ctx.log_extra(run_id=run.id, installation_id=run.installation_id)
    reason = github_app.installation_block_reason(session=ctx.session, installation_id=run.installation_id)
    if reason is None and github_app.is_repository_removed(session=ctx.session, repo=run.repo):
        reason = f"{run.repo} was removed from installation {run.installation_id}"
    if reason is not None:
        logger.info("no PR comment: %s", reason, extra=extra)
        return
    current = effective_config(session=ctx.session, repo=run.repo)
    if current.needs_fetch:
        # Read the file now, so that alert routing gets it too, even in a repository without
        # pull requests. The comment sender reads it itself if this has not happened yet.
        queue_config_refresh(session=ctx.session, repo=run.repo, installation_id=run.installation_id)
    elif not current.config.pr_comments.enabled:
        return

    targets, found = pull_request_targets(ctx, run)
    for number, base_ref in targets:
        queue_comment_refresh(
            session=ctx.session,
            repo=run.repo,
            number=number,
            installation_id=run.installation_id,
            head_sha=run.head_sha,
            head_repository=run.head_repository,
            base_ref=base_ref,
            seen_at=run.created_at,
            dedupe_key=f"github_pr_comment:{run.repo}#{number}:run:{run.id}:{attempt.attempt}",
        )
    if found or run.event not in github_app.PULL_REQUEST_EVENTS or not run.head_sha:
        return
    # A fork's run carries no pull request numbers; ask GitHub once per head commit.
    outbox.enqueue(
        session=ctx.session,
        kind=PR_LOOKUP_KIND,
        target=run.repo,
        payload={
            "repo": run.repo,
            "installation_id": run.installation_id,
            "head_sha": run.head_sha,
            "head_repository": run.head_repository,
            "seen_at": run.created_at.isoformat() if run.created_at else None,
        },
        dedupe_key=f"{PR_LOOKUP_KIND}:{run.repo}:{run.head_repository}:{run.head_sha}",
    )
