"""Reaction to a push on the default branch that touches `.github/release-bot.yml`: read it again."""

from __future__ import annotations

import logging
from typing import Any

from bot.repo_config import CONFIG_PATH, REFRESH_KIND, queue_config_refresh
from handlers.github.context import HandlerContext
from handlers.github.payload import optional_int, optional_object, optional_str, repository_name
from storage import github_app

logger = logging.getLogger(__name__)

# GitHub lists at most this many commits in a push payload; a longer push may hide a change.
MAX_LISTED_COMMITS = 2048
ZERO_SHA = "0" * 40


def touches_config(payload: dict[str, Any]) -> bool:
    """Tell whether a push may have changed the configuration file."""
    commits = [commit for commit in payload.get("commits") or [] if isinstance(commit, dict)]
    # A forced push can bring back an older file without a commit that lists it.
    if payload.get("forced") is True or not commits or len(commits) >= MAX_LISTED_COMMITS:
        return True
    return any(
        CONFIG_PATH in (commit.get(key) or [])
        for commit in commits
        for key in ("added", "modified", "removed")
    )


def on_branch_push(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Mark the repository's configuration stale and queue a refresh, for a default-branch push."""
    if not ctx.settings.has_github_app:
        return
    repository = optional_object(payload, "repository")
    default_branch = optional_str(repository, "default_branch")
    repo = repository_name(payload)
    installation_id = optional_int(optional_object(payload, "installation"), "id")
    after = optional_str(payload, "after") or ""
    if not default_branch or optional_str(payload, "ref") != f"refs/heads/{default_branch}":
        return
    if repo is None or installation_id is None or after == ZERO_SHA or not touches_config(payload):
        return
    if github_app.installation_block_reason(session=ctx.session, installation_id=installation_id) is not None:
        return

    github_app.mark_repo_config_stale(session=ctx.session, repo=repo, installation_id=installation_id)
    queue_config_refresh(
        session=ctx.session, repo=repo, installation_id=installation_id, dedupe_key=f"{REFRESH_KIND}:{repo}:{after}"
    )
    logger.info("repository configuration changed, refresh queued", extra=ctx.log_extra(repo=repo))
