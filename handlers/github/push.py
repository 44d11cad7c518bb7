"""`push` of a tag: the tags a release can be built from. A branch push only matters when it
changes the repository configuration (handlers/github/reactions/repo_config.py)."""

from __future__ import annotations

from typing import Any

from handlers.github.context import HandlerContext, record_repository
from handlers.github.payload import optional_object, optional_str, parse_time
from handlers.github.reactions import repo_config
from storage import github as github_facts

EVENTS = ("push",)

TAG_PREFIX = "refs/tags/"
ZERO_SHA = "0" * 40


def handle(ctx: HandlerContext, payload: dict[str, Any]) -> None:
    """Record a tag creation or deletion."""
    ref = optional_str(payload, "ref") or ""
    if not ref.startswith(TAG_PREFIX):
        repo_config.on_branch_push(ctx, payload)
        return
    repo = record_repository(ctx, payload) or ""
    after = optional_str(payload, "after")
    deleted = payload.get("deleted") is True or after == ZERO_SHA
    head_commit = optional_object(payload, "head_commit")
    github_facts.record_tag(
        session=ctx.session,
        repo=repo,
        name=ref.removeprefix(TAG_PREFIX),
        sha=None if deleted else after,
        pusher=optional_str(optional_object(payload, "pusher"), "name"),
        pushed_at=parse_time(head_commit.get("timestamp")) or parse_time(optional_object(payload, "repository").get("pushed_at")),
        deleted=deleted,
    )
